"""End-to-end training through the CLI: resume, determinism, the saved config."""
import os

import numpy as np
import pytest

from tests import cli_testing as cli


def test_second_train_call_resumes_at_the_saved_step(tmp_path):
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  run = tmp_path / "run"
  cli.train(run, "run.corpus = '%s'" % corpus, "run.train_steps = 4",
            "run.steps_per_checkpoint = 2")
  assert [r["step"] for r in cli.metrics(run)] == [1, 2, 3, 4]
  result = cli.mtfzoo("train", "--model_dir", run, "--gin_param", "run.train_steps = 6")
  assert "resuming from step 4" in result.stdout
  assert [r["step"] for r in cli.metrics(run)] == [1, 2, 3, 4, 5, 6]
  with open(run / "checkpoint") as f:
    assert 'model_checkpoint_path: "model.ckpt-6"' in f.read()


def test_same_seed_gives_identical_metrics(tmp_path):
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  losses = []
  for name in ("a", "b"):
    cli.train(tmp_path / name, "run.corpus = '%s'" % corpus, "run.train_steps = 5")
    losses.append([(r["loss"], r["grad_norm"]) for r in cli.metrics(tmp_path / name)])
  assert losses[0] == losses[1]


@pytest.mark.slow
def test_training_30_steps_on_shakespeare_lowers_the_loss(tmp_path):
  cli.train(tmp_path / "run", "run.train_steps = 30", "run.batch_size = 8",
            "run.sequence_length = 64", "learning_rate_schedule.base = 3e-3")
  losses = [r["loss"] for r in cli.metrics(tmp_path / "run")]
  assert len(losses) == 30
  assert np.mean(losses[-5:]) < losses[0] - 1.0  # from ≈ ln 256 = 5.5 nats


def test_operative_config_is_saved_so_later_commands_need_only_model_dir(tmp_path):
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  run = tmp_path / "run"
  cli.train(run, "run.corpus = '%s'" % corpus, "run.train_steps = 2")
  config = (run / "config.gin").read_text()
  assert "run.train_steps = 2" in config and "GPT.d_model = 32" in config
  out = cli.mtfzoo("sample", "--model_dir", run, "--prompt", "To", "--length", "5",
                   "--temperature", "0").stdout
  assert out.startswith("To") and len(out.rstrip("\n").encode()) >= 5
  assert os.path.exists(run / "run.json")
