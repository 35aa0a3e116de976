"""metrics.jsonl: one JSON object per logged training step, plus a progress line."""
import json
import math
import resource
import sys
import threading
import time

from mtf_compat import tf

METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval_metrics.jsonl"


def read_jsonl(path):
  if not tf.io.gfile.exists(path):
    return []
  with tf.io.gfile.GFile(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path, records):
  """Rewrites the file atomically (temp file, then rename)."""
  tmp = path + ".tmp"
  with tf.io.gfile.GFile(tmp, "w") as f:
    for r in records:
      f.write(json.dumps(r) + "\n")
  tf.io.gfile.rename(tmp, path, overwrite=True)


def truncate_after(path, step):
  """Drops records past `step`: after a crash they describe updates the resumed run
  redoes from the last checkpoint."""
  records = read_jsonl(path)
  kept = [r for r in records if r["step"] <= step]
  if len(kept) != len(records):
    write_jsonl(path, kept)


def format_duration(seconds):
  seconds = int(seconds)
  if seconds >= 3600:
    return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
  return "%dm%02ds" % (seconds // 60, seconds % 60)


class NonFiniteError(Exception):
  pass


class MetricsHook(tf.estimator.SessionRunHook, tf.estimator.CheckpointSaverListener):
  """Fetches the step's loss, its cross-entropy and z-term, gradient norm and learning
  rate, appends them to
  metrics.jsonl every `log_every` steps, and prints a progress line every few seconds.

  It is also a checkpoint listener: records are flushed before every checkpoint is
  written, so metrics.jsonl always covers at least every step up to the latest
  checkpoint, even if the process dies right after the checkpoint is committed.

  On TPU the step's tensors reach the host through the host_call's outfeed, which
  calls `record` (from another thread) instead of this hook fetching them.
  """

  def __init__(self, model_dir, tensors, start_step, train_steps, tokens_per_step,
               log_every=1, stop_on_nonfinite=False, progress_secs=5.0,
               flush_secs=10.0, out=sys.stdout):
    self.path = model_dir.rstrip("/") + "/" + METRICS_FILE
    self.tensors = tensors
    self.step = start_step
    self.train_steps = train_steps
    self.tokens_per_step = tokens_per_step
    self.log_every = log_every
    self.stop_on_nonfinite = stop_on_nonfinite
    self.progress_secs = progress_secs
    self.flush_secs = flush_secs
    self.out = out
    self.records = read_jsonl(self.path)
    self.pending = False
    self.lock = threading.RLock()  # record() may run on the outfeed thread
    self.nonfinite = None  # the NonFiniteError that stopped training, if any
    self.begin()

  def begin(self):
    self.start_time = self.last_time = self.last_progress = self.last_flush = (
        time.time())
    self.last_step = self.step
    self.first_step = self.step

  def before_run(self, run_context):
    return tf.estimator.SessionRunArgs(self.tensors)

  def after_run(self, run_context, run_values):
    self.record(run_values.results)

  def record(self, values):
    """One step's {step, loss, grad_norm, learning_rate, finite, skipped_steps}."""
    with self.lock:
      self.record_locked(values)

  def record_locked(self, values):
    self.step = int(values["step"]) if "step" in values else self.step + 1
    if not values["finite"] and self.stop_on_nonfinite:
      self.flush()
      self.nonfinite = NonFiniteError(
          "non-finite loss or gradient norm at step %d (loss %s, grad_norm %s); the "
          "update was not applied and the last checkpoint is intact"
          % (self.step, values["loss"], values["grad_norm"]))
      raise self.nonfinite
    now = time.time()
    if self.step % self.log_every == 0 or self.step == self.train_steps:
      tokens_per_sec = ((self.step - self.last_step) * self.tokens_per_step
                        / max(now - self.last_time, 1e-9))
      self.last_step, self.last_time = self.step, now
      self.records.append({
          "step": self.step,
          "loss": float(values["loss"]),  # optimised: cross-entropy + z + balance
          "bpc": float(values["cross_entropy"]) / math.log(2.0),
          "z_loss": float(values["z_loss"]),
          "balance_loss": float(values["balance_loss"]),
          "learning_rate": float(values["learning_rate"]),
          "grad_norm": float(values["grad_norm"]),
          "tokens_per_sec": tokens_per_sec,
          "wall_time": now,
          "skipped_steps": int(values["skipped_steps"]),
          "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
      })
      self.pending = True
    if now - self.last_flush > self.flush_secs:
      self.flush()
    if now - self.last_progress > self.progress_secs or self.step == self.train_steps:
      self.progress(values, now)

  def progress(self, values, now):
    self.last_progress = now
    done = self.step - self.first_step
    rate = done / max(now - self.start_time, 1e-9)
    eta = (self.train_steps - self.step) / rate if rate > 0 else 0.0
    print("step %d/%d  loss %.4f  bpc %.4f  %.0f tokens/s  ETA %s"
          % (self.step, self.train_steps, values["loss"],
             values["cross_entropy"] / math.log(2.0), rate * self.tokens_per_step,
             format_duration(eta)), file=self.out, flush=True)

  def flush(self):
    with self.lock:
      self.flush_locked()

  def flush_locked(self):
    if self.pending:
      write_jsonl(self.path, self.records)
      self.pending = False
    self.last_flush = time.time()

  def before_save(self, session, global_step_value):
    self.flush()

  def end(self, session, global_step_value=None):  # hook and listener signatures
    self.flush()
