"""TensorBoard summaries through TPUEstimator's host_call, the one path that works on
TPU (tensors leave the device through the outfeed) and on CPU alike."""
import math

import numpy as np

from mtf_compat import tf

# "loss" is the optimised total; "bpc" is written from "cross_entropy" alone and the
# z-term and the experts' balance loss have their own scalars.
SUMMARIZED = ("loss", "cross_entropy", "z_loss", "balance_loss", "grad_norm",
              "learning_rate", "skipped_steps")
RECORDED = SUMMARIZED + ("finite",)


def host_call(model_dir, tensors, recorders=()):
  """(fn, args) for TPUEstimatorSpec.host_call: summaries at tensors["step"], the
  updated global step (the step metrics.jsonl names), and each of `recorders`
  (callables taking {name: value} of one step, e.g. MetricsHook.record) called on the
  host with the step's values."""
  names = [n for n in RECORDED if n in tensors]
  # host_call arguments need a leading (batch-like) dimension; on TPU the host gets
  # one row per core, all equal (the tensors are replicated).
  args = [tf.reshape(tf.cast(tensors["step"], tf.int64), [1])] + [
      tf.reshape(tf.cast(tensors[n], tf.float32), [1]) for n in names]

  def write(step, *values):
    step = step[0]
    ops = []
    with tf.compat.v2.summary.create_file_writer(model_dir).as_default():
      with tf.compat.v2.summary.record_if(True):
        for name, value in zip(names, values):
          if name not in SUMMARIZED:
            continue
          tf.compat.v2.summary.scalar(name, value[0], step=step)
          if name == "cross_entropy":
            tf.compat.v2.summary.scalar("bpc", value[0] / math.log(2.0), step=step)
        ops += tf.summary.all_v2_summary_ops()
    if recorders:
      ops.append(tf.numpy_function(
          lambda *row: record_step(recorders, names, row), [step] +
          [v[0] for v in values], tf.int64, stateful=True, name="record_step"))
    return ops

  return write, args


def record_step(recorders, names, row):
  """Hands one step's values (step first, then `names`) to every recorder."""
  values = {"step": int(row[0])}
  values.update({n: float(v) for n, v in zip(names, row[1:])})
  for record in recorders:
    record(values)
  return np.int64(values["step"])
