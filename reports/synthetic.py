"""mtfzoo synthetic: train a config on a synthetic recall task (data/synthetic.py) in
the TPUEstimator loop, with the loss read at the answer positions only, and measure
its accuracy there on held-out sequences, as one JSON record."""
import tempfile
import time

import numpy as np

from data import synthetic
from mtf_compat import mtf, tf
from optimizers import schedules
from trainer import checkpoints
from trainer import model_summary
from trainer.errors import UserError
from trainer.estimator import make_estimator
from trainer.model_fn import build_model

# mqar: the most pairs measured that a 2-layer d_model 64 Transformer with a short
# convolution (gin/experiments/recall.gin) recalls in CPU minutes at context 128: 0.998
# after 3,000 steps, as with 8 (README). Without the convolution, 2 pairs reach 0.75.
DEFAULT_NUM_PAIRS = 16
HELD_OUT_SEQUENCES = 1024  # rounded up to whole batches
TIMER_WARMUP = 10          # steps before tokens/s is timed (graph start-up, caches)


class StepClock(tf.estimator.SessionRunHook):
  """The wall time of each training step after the first `warmup`."""

  def __init__(self, warmup):
    self.warmup = warmup
    self.times = []

  def after_run(self, run_context, run_values):
    self.times.append(time.perf_counter())

  def step_time(self):
    times = self.times[self.warmup:] if len(self.times) > self.warmup + 1 else self.times
    return float(np.median(np.diff(times))) if len(times) > 1 else None


def state_bytes_per_sequence(settings):
  """Bytes of the memories the incremental sampler keeps for one sequence: what a
  prefill records (attention's keys and values, the inputs of seq² maps, the Mixer's
  hidden units; layers/context.py) at the activation dtype, per row."""
  with tf.Graph().as_default():
    mesh = mtf.Mesh(mtf.Graph(), "mesh")
    model, context, token_shape = build_model(settings, mesh, "predict", 1)
    context.start_prefill()
    model.logits(mtf.zeros(mesh, token_shape, tf.int32), context)
    memories = context.memories
  itemsize = 2 if settings.activation_dtype == "bfloat16" else 4
  return sum(m.shape.size for m in memories) * itemsize


def held_out_accuracy(estimator, generate, settings, seed):
  """Greedy next-byte accuracy at the answer positions of held-out sequences (their
  own stream of the seed, never trained on)."""
  batch = settings.batch_size
  count = -(-HELD_OUT_SEQUENCES // batch) * batch
  inputs, targets, mask = synthetic.sequences(generate, seed, synthetic.HELD_OUT_STREAM,
                                              0, count)

  def input_fn(params):
    del params
    return tf.data.Dataset.from_tensor_slices(
        {"inputs": inputs, "targets": targets}).batch(batch, drop_remainder=True)

  predicted = np.stack([p["predicted"] for p in estimator.predict(input_fn)])
  return float(np.sum((predicted == targets) * mask) / np.sum(mask))


def train_and_measure(settings, task, model_name, seed=0, num_pairs=None,
                      model_dir=None):
  """The JSON record of `mtfzoo synthetic`. model_dir None: a temporary one."""
  if task == "mqar" and num_pairs is None:
    num_pairs = DEFAULT_NUM_PAIRS
  try:
    generate = synthetic.make_task(task, settings.sequence_length, num_pairs)
  except synthetic.TaskError as e:
    raise UserError(str(e))
  try:
    summary = model_summary.summarize(settings)
  except ValueError as e:  # a model the gin config cannot build, e.g. heads ∤ d_model
    raise UserError("model: %s" % str(e).strip().splitlines()[0])
  with tempfile.TemporaryDirectory() as scratch:
    model_dir = model_dir or scratch
    checkpoints.check_compatible(model_dir, summary.variable_shapes)
    start = checkpoints.latest_step(model_dir)
    clock = StepClock(TIMER_WARMUP)
    estimator = make_estimator(settings, model_dir, hooks=lambda tensors: [clock])
    if start < settings.train_steps:
      estimator.train(synthetic.make_input_fn(generate, settings.sequence_length, seed,
                                              start_step=start),
                      max_steps=settings.train_steps)
    accuracy = held_out_accuracy(estimator, generate, settings, seed)
  step_time = clock.step_time()
  return {
      "task": task,
      "model": model_name,
      "params": summary.params,
      "d_model": summary.d_model,
      "sequence_length": settings.sequence_length,
      "steps": settings.train_steps,
      "learning_rate": schedules.bound_peak_learning_rate(summary.d_model),
      "accuracy": accuracy,
      "state_bytes_per_sequence": state_bytes_per_sequence(settings),
      "tokens_per_sec": settings.tokens_per_step / step_time if step_time else None,
      **({"num_pairs": num_pairs} if task == "mqar" else {}),
  }
