"""End-to-end training through the CLI: resume, determinism, score vs loss."""
import json
import math
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


def test_score_of_a_text_equals_the_models_own_loss_on_it(tmp_path):
  # The held-out split of this corpus is exactly one window of 17 bytes, so `eval`
  # (batch 1) computes the model's loss on that text; `score` must agree.
  window = b"But, soft! what l"
  text = (b"What light through yonder window breaks? " * 4)[:153] + window
  assert len(text) == 170 and text[153:] == window
  corpus = tmp_path / "corpus.txt"
  corpus.write_bytes(text)
  run = tmp_path / "run"
  cli.train(run, "run.corpus = '%s'" % corpus, "run.train_steps = 3",
            "run.batch_size = 1")
  eval_out = cli.mtfzoo("eval", "--model_dir", run).stdout
  bpc = float(eval_out.strip().split("bpc: ")[-1])
  score = json.loads(cli.mtfzoo("score", "--model_dir", run, "--text",
                                window.decode()).stdout)
  assert score["bytes"] == 17 and len(score["log2_probs"]) == 16
  assert score["bpc"] == pytest.approx(-np.mean(score["log2_probs"]))
  assert score["bpc"] == pytest.approx(bpc, abs=1e-4)  # eval prints 4 decimals


def test_score_is_causal_and_covers_long_texts(tmp_path):
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  run = tmp_path / "run"
  cli.train(run, "run.corpus = '%s'" % corpus, "run.train_steps = 3")
  text = "To be, or not to be, that is the question: whether 'tis nobler"
  changed = text[:40] + text[40:].upper()
  a = json.loads(cli.mtfzoo("score", "--model_dir", run, "--text", text).stdout)
  b = json.loads(cli.mtfzoo("score", "--model_dir", run, "--text", changed).stdout)
  assert a["bytes"] == len(text) and len(a["log2_probs"]) == len(text) - 1
  # Bytes 1..40 are predicted from text[:40] only: identical in both scores.
  assert a["log2_probs"][:39] == b["log2_probs"][:39]
  assert a["log2_probs"][39:] != b["log2_probs"][39:]
  assert all(math.isfinite(x) and x <= 0 for x in a["log2_probs"])


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
