"""End-to-end training through the CLI: resume, determinism, the saved config."""
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


def tensorboard_scalars(model_dir):
  """{tag: [value at step 1, 2, ...]} of the training run's TensorBoard scalars."""
  from mtf_compat import tf  # pylint: disable=g-import-not-at-top
  by_step = {}
  for path in tf.io.gfile.glob(os.path.join(str(model_dir), "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        number = (tf.make_ndarray(value.tensor) if value.HasField("tensor")
                  else value.simple_value)
        by_step.setdefault(value.tag, {})[event.step] = float(number)
  return {tag: [v[s] for s in sorted(v)] for tag, v in by_step.items()}


# One short run with a z-loss and a warmed-up cosine schedule, shared by the tests of
# what metrics.jsonl, eval_metrics.jsonl and TensorBoard report. Its base lr is given for
# d_model BASE_WIDTH, so the schedule peaks at PEAK on cli.TINY's d_model.
Z_LOSS, BASE, WARMUP, TOTAL, MIN_RATIO = 0.01, 0.01, 3, 8, 0.1
BASE_WIDTH, D_MODEL = 16, 32
PEAK = BASE * BASE_WIDTH / D_MODEL


@pytest.fixture(scope="module")
def reported_run(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp("reported")
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  run = tmp_path / "run"
  cli.train(run, "run.corpus = '%s'" % corpus, "run.train_steps = %d" % TOTAL,
            "GPT.z_loss = %r" % Z_LOSS,
            "learning_rate_schedule.base = %r" % BASE,
            "learning_rate_schedule.schedule = 'cosine'",
            "learning_rate_schedule.warmup_steps = %d" % WARMUP,
            "learning_rate_schedule.min_ratio = %r" % MIN_RATIO,
            "learning_rate_schedule.base_width = %d" % BASE_WIDTH)
  return run


def test_metrics_report_bpc_from_cross_entropy_and_the_z_term_apart(reported_run):
  """z-loss (PaLM, Chowdhery et al. 2022) adds c·mean(log²Z) to the optimised loss.
  At init the logits are near 0, so log Z ≈ ln 256 and the cross-entropy ≈ ln 256:
  step 1 must log z_loss ≈ c·(ln 256)², bpc ≈ 8 (not (ln 256 + z)/ln 2), and
  loss = cross-entropy + z_loss at every step; held-out records do the same."""
  records = cli.metrics(reported_run)
  first = records[0]
  assert first["z_loss"] == pytest.approx(Z_LOSS * math.log(256) ** 2, rel=0.02)
  assert first["bpc"] == pytest.approx(8.0, abs=0.05)
  for r in records:
    assert r["z_loss"] > 0
    assert r["bpc"] * math.log(2) + r["z_loss"] == pytest.approx(r["loss"], rel=1e-5)
  summaries = tensorboard_scalars(reported_run)
  for name in ("bpc", "z_loss", "loss"):
    np.testing.assert_allclose(summaries[name], [r[name] for r in records], rtol=1e-5,
                               err_msg=name)
  [held_out] = cli.metrics(reported_run, "eval_metrics.jsonl")
  assert held_out["eval_z_loss"] > 0.1
  assert held_out["eval_bpc"] == pytest.approx(held_out["eval_loss"] / math.log(2))
  assert held_out["eval_bpc"] < 8.1  # cross-entropy only: with the z-term it is ≈ 8.4


def test_logged_learning_rate_is_the_schedule_at_each_update(reported_run):
  """metrics.jsonl step s is the update made at global step s − 1: its learning rate is
  peak · s / w during the warmup (never 0, the first update counts), then the cosine
  decay (Loshchilov & Hutter 2017) peak · (r + (1 − r)(1 + cos π p) / 2) with
  p = (s − 1 − w) / (T − w), where peak = base · base_width / d_model: the schedule is
  built on the trained model's own width."""
  assert "GPT.d_model = %d" % D_MODEL in cli.TINY
  expected = []
  for s in range(1, TOTAL + 1):
    if s - 1 < WARMUP:
      expected.append(PEAK * s / WARMUP)
    else:
      p = (s - 1 - WARMUP) / (TOTAL - WARMUP)
      expected.append(PEAK * (MIN_RATIO + (1 - MIN_RATIO)
                              * (1 + math.cos(math.pi * p)) / 2))
  logged = [m["learning_rate"] for m in cli.metrics(reported_run)]
  np.testing.assert_allclose(logged, expected, rtol=1e-6)
