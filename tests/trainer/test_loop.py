"""loop.train on a TPU, with TPUEstimator replaced by what it does on the host there:
each step's values arrive through the model_fn's host_call (the outfeed), never through
a session hook. metrics.jsonl is written from them, and run.on_nonfinite='stop' ends the
run with the same one-line error as on CPU."""
import math
import os

import gin
import pytest

from mtf_compat import tf
# pylint: disable=g-direct-tensorflow-import
from tensorflow.python.ops import summary_ops_v2
from reports import compare
from tests import cli_testing as cli
from trainer import config
from trainer import loop
from trainer import summaries
from trainer.errors import UserError
from trainer.run import Run

LOSSES = {1: 5.0, 2: 4.0, 3: 3.5, 4: 3.0}


class HostSideTPUEstimator:
  """Runs, per training step, the host side of the host_call as TPUEstimator does with
  each step's outfeed; writes the final checkpoint."""

  def __init__(self, settings, model_dir, hooks=None, **unused):
    self.settings, self.model_dir, self.hooks = settings, model_dir, hooks

  def train(self, input_fn, max_steps):
    del input_fn
    start = loop.checkpoints.latest_step(self.model_dir)
    recorders = [h.record for h in self.hooks({})]  # the model_fn's TPU branch
    with tf.Graph().as_default():
      outfeed = {"step": tf.placeholder(tf.int64, [])}
      outfeed.update({n: tf.placeholder(tf.float32, [])
                      for n in summaries.RECORDED})
      fn, args = summaries.host_call(self.model_dir, outfeed, recorders)
      host_ops = fn(*args)
      global_step = tf.train.get_or_create_global_step()
      with tf.Session() as session:
        session.run([summary_ops_v2.summary_writer_initializer_op(),
                     tf.global_variables_initializer()])
        for step in range(start + 1, max_steps + 1):
          loss = LOSSES.get(step, math.nan)
          finite = math.isfinite(loss)
          session.run(host_ops, {
              outfeed["step"]: step, outfeed["loss"]: loss,
              outfeed["cross_entropy"]: loss, outfeed["z_loss"]: 0.0,
              outfeed["balance_loss"]: 0.0,
              outfeed["grad_norm"]: 1.0, outfeed["learning_rate"]: 1e-3,
              outfeed["skipped_steps"]: 0.0 if finite else 1.0,
              outfeed["finite"]: float(finite)})
          session.run(global_step.assign(step))
        tf.train.Saver().save(session, os.path.join(self.model_dir, "model.ckpt"),
                              global_step=max_steps)

  def evaluate(self, input_fn, steps):
    del input_fn, steps
    return {"loss": 2.0, "cross_entropy": 2.0, "bpc": 2.0 / math.log(2.0),
            "z_loss": 0.0, "global_step": loop.checkpoints.latest_step(self.model_dir)}


@pytest.fixture
def tpu_run(tmp_path, monkeypatch):
  monkeypatch.setattr(loop, "make_estimator", HostSideTPUEstimator)
  corpus = cli.write_corpus(tmp_path / "corpus.txt")

  def settings(*bindings):
    config.parse(["gin/models/transformer.gin", "gin/layouts/v4_8.gin"],
                 cli.TINY + ["run.corpus = '%s'" % corpus] + list(bindings))
    return Run()

  yield settings
  gin.clear_config()


def test_on_tpu_metrics_jsonl_is_written_from_the_host_call(tpu_run, tmp_path):
  model_dir = str(tmp_path / "run")
  loop.train(tpu_run("run.train_steps = 4"), model_dir, {"tpu": "local"}, out=open(
      os.devnull, "w"))
  records = cli.metrics(model_dir)
  assert [r["step"] for r in records] == [1, 2, 3, 4]
  assert [r["loss"] for r in records] == [LOSSES[s] for s in (1, 2, 3, 4)]
  assert records[-1]["bpc"] == pytest.approx(3.0 / math.log(2))
  # compare reads a TPU run like a CPU one: curves from metrics.jsonl, the table row.
  compare.compare([model_dir], str(tmp_path / "report"))
  assert [r["bpc"] for r in compare.load_run(model_dir)["train"]] == [
      LOSSES[s] / math.log(2) for s in (1, 2, 3, 4)]
  row = open(tmp_path / "report" / "table.md").read().splitlines()[-1]
  assert row.startswith("| run | ") and "| %.3f |" % (2.0 / math.log(2)) in row


def test_on_tpu_on_nonfinite_stop_is_the_cpu_error(tpu_run, tmp_path):
  model_dir = str(tmp_path / "run")
  with pytest.raises(UserError, match=r"^non-finite loss or gradient norm at step 5 "):
    loop.train(tpu_run("run.train_steps = 6", "run.on_nonfinite = 'stop'"), model_dir,
               {"tpu": "local"}, out=open(os.devnull, "w"))
  assert [r["step"] for r in cli.metrics(model_dir)] == [1, 2, 3, 4]


def test_on_tpu_on_nonfinite_skip_records_the_skipped_step(tpu_run, tmp_path):
  model_dir = str(tmp_path / "run")
  loop.train(tpu_run("run.train_steps = 5"), model_dir, {"tpu": "local"},
             out=open(os.devnull, "w"))
  last = cli.metrics(model_dir)[-1]
  assert last["step"] == 5 and math.isnan(last["loss"]) and last["skipped_steps"] == 1
