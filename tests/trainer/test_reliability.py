"""Training survives what goes wrong: a kill at any moment (even mid-save) and NaNs."""
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np

from tests import cli_testing as cli

# `mtfzoo train` with SIGKILL at a chosen point of one checkpoint save, read from
# CRASH_AT="before_commit:N" or "after_commit:N". TF's saver writes a checkpoint's data
# and index, then commits it by atomically rewriting the `checkpoint` file
# (update_checkpoint_state_internal), then calls the listeners.
CRASH_DRIVER = """
import os, signal, sys
import mtf_compat
from tensorflow.python.checkpoint import checkpoint_management
when, step = os.environ["CRASH_AT"].split(":")
commit = checkpoint_management.update_checkpoint_state_internal

def update(save_dir, model_checkpoint_path, *args, **kwargs):
  crash = model_checkpoint_path.endswith("model.ckpt-" + step)
  if crash and when == "before_commit":
    os.kill(os.getpid(), signal.SIGKILL)
  commit(save_dir, model_checkpoint_path, *args, **kwargs)
  if crash and when == "after_commit":
    os.kill(os.getpid(), signal.SIGKILL)

checkpoint_management.update_checkpoint_state_internal = update
import cli
sys.exit(cli.main(["mtfzoo"] + sys.argv[1:]))
"""

COUNTERS = ("global_step", "nonfinite_steps")


def train_args(model_dir, corpus, *bindings):
  return ["train", "--gin_file", "gin/models/transformer.gin", "--model_dir",
          str(model_dir)] + cli.gin_params("run.corpus = '%s'" % corpus, *bindings)


def crash(when, step, args):
  result = subprocess.run([sys.executable, "-c", CRASH_DRIVER] + args, cwd=cli.REPO,
                          env=dict(os.environ, CRASH_AT="%s:%d" % (when, step)),
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]


def committed(model_dir):
  """The step the `checkpoint` file names (0 if there is none)."""
  try:
    with open(os.path.join(model_dir, "checkpoint")) as f:
      first = f.readline()
  except FileNotFoundError:
    return 0
  return int(first.strip().rstrip('"').rsplit("-", 1)[1]) if first else 0


def checkpoint(model_dir, step):
  """{name: value} of every variable in model_dir/model.ckpt-<step>."""
  from mtf_compat import tf  # pylint: disable=g-import-not-at-top
  path = os.path.join(model_dir, "model.ckpt-%d" % step)
  return {name: tf.train.load_variable(path, name)
          for name, _ in tf.train.list_variables(path)}


def assert_all_finite(values):
  floats = {n: v for n, v in values.items() if np.issubdtype(np.asarray(v).dtype,
                                                                np.floating)}
  assert len(floats) > 5
  bad = sorted(n for n, v in floats.items() if not np.all(np.isfinite(v)))
  assert not bad, bad


def steps(model_dir):
  return [r["step"] for r in cli.metrics(model_dir)]


def test_sigkill_after_a_checkpoint_then_rerun_ends_like_an_uninterrupted_run(tmp_path):
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  bindings = ("run.train_steps = 200", "run.steps_per_checkpoint = 5")
  run = tmp_path / "run"
  command = [sys.executable, "-m", "cli"] + train_args(run, corpus, *bindings)
  process = subprocess.Popen(command, cwd=cli.REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 300
    while committed(run) == 0 and process.poll() is None and time.time() < deadline:
      time.sleep(0.01)
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
  finally:
    process.kill()
    process.wait()
  killed_at = committed(run)
  assert 0 < killed_at < 200

  result = cli.mtfzoo(*train_args(run, corpus, *bindings))
  assert "resuming from step %d" % killed_at in result.stdout
  assert committed(run) == 200
  assert steps(run) == list(range(1, 201))  # no step lost or logged twice

  # The resumed run continued the weights, optimizer state and data order: its
  # metrics are those of a run that was never interrupted.
  cli.mtfzoo(*train_args(tmp_path / "reference", corpus, *bindings))
  resumed = [(r["loss"], r["grad_norm"]) for r in cli.metrics(run)]
  reference = [(r["loss"], r["grad_norm"]) for r in cli.metrics(tmp_path / "reference")]
  assert resumed == reference


def test_kill_mid_save_leaves_the_previous_checkpoint_for_eval_and_resume(tmp_path):
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  run = tmp_path / "run"
  args = train_args(run, corpus, "run.train_steps = 12", "run.steps_per_checkpoint = 5")
  # Killed after writing step 10's data and index, before committing them.
  crash("before_commit", 10, args)
  assert committed(run) == 5
  assert os.path.exists(run / "model.ckpt-10.index")
  # A kill earlier in the save leaves partial files: make step 10's data garbage and
  # leave the sharded saver's temporary directory behind.
  data_files = sorted(p for p in os.listdir(run) if p.startswith("model.ckpt-10.data"))
  assert data_files
  with open(run / data_files[0], "r+b") as f:
    f.truncate(7)
  os.makedirs(run / "model.ckpt-10_temp")
  (run / "model.ckpt-10_temp" / "part-00000-of-00002.data-00000-of-00001").write_bytes(
      b"\x00garbage")

  bpc = float(cli.mtfzoo("eval", "--model_dir", run).stdout.split("bpc: ")[-1])
  assert math.isfinite(bpc) and 0 < bpc < 8.5

  result = cli.mtfzoo(*args)
  assert "resuming from step 5" in result.stdout
  assert committed(run) == 12
  assert steps(run) == list(range(1, 13))
  assert_all_finite(checkpoint(run, 12))
  assert checkpoint(run, 10)["global_step"] == 10  # step 10 saved again, whole


def test_kill_right_after_a_checkpoint_commit_loses_no_metrics(tmp_path):
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  run = tmp_path / "run"
  args = train_args(run, corpus, "run.train_steps = 12", "run.steps_per_checkpoint = 5")
  # The `checkpoint` file names step 10; nothing after the commit ran.
  crash("after_commit", 10, args)
  assert committed(run) == 10
  assert steps(run) == list(range(1, 11))  # flushed before the checkpoint committed

  result = cli.mtfzoo(*args)
  assert "resuming from step 10" in result.stdout
  assert steps(run) == list(range(1, 13))


def test_nan_step_is_skipped_counted_and_never_reaches_a_checkpoint(tmp_path):
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  run = tmp_path / "run"
  cli.mtfzoo(*train_args(run, corpus, "run.train_steps = 6", "run.nan_at_step = 3",
                         "run.steps_per_checkpoint = 1", "run.keep_checkpoints = 10"))
  records = cli.metrics(run)
  assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
  assert [r["skipped_steps"] for r in records] == [0, 0, 1, 1, 1, 1]
  assert not math.isfinite(records[2]["loss"])  # the real loss of step 3 is logged
  assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"])
             for r in records[3:])

  before, skipped, after = (checkpoint(run, s) for s in (2, 3, 4))
  assert (skipped["global_step"], skipped["nonfinite_steps"]) == (3, 1)
  # Step 3 changed no weight and no optimizer state; step 4 updated again.
  names = sorted(set(before) - set(COUNTERS))
  assert names == sorted(set(skipped) - set(COUNTERS))
  for name in names:
    np.testing.assert_array_equal(skipped[name], before[name], err_msg=name)
  assert any(not np.array_equal(after[n], skipped[n]) for n in names)
  final = checkpoint(run, 6)
  assert_all_finite(final)
  assert (final["global_step"], final["nonfinite_steps"]) == (6, 1)


def test_nan_with_on_nonfinite_stop_exits_2_naming_the_step_and_keeps_checkpoint(
    tmp_path):
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  run = tmp_path / "run"
  result = cli.mtfzoo(*train_args(run, corpus, "run.train_steps = 6",
                                  "run.nan_at_step = 3", "run.steps_per_checkpoint = 2",
                                  "run.on_nonfinite = 'stop'"), check=False)
  lines = [l for l in result.stderr.splitlines() if l.strip()]
  assert result.returncode == 2, result.stderr[-2000:]
  assert len(lines) == 1, result.stderr[-2000:]
  assert "step 3" in lines[0] and "non-finite" in lines[0]
  assert committed(run) == 2
  assert not any(p.startswith(("model.ckpt-3", "model.ckpt-4")) for p in os.listdir(run))
  assert_all_finite(checkpoint(run, 2))
  assert steps(run) == [1, 2]
