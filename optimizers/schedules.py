"""Learning-rate schedules: a tf float32 scalar from the (integer) global step."""
import math

import gin

from mtf_compat import tf

SCHEDULES = ("constant", "linear", "cosine", "rsqrt")
DEFAULT_BASE = 1e-3


def peak_learning_rate(d_model, base=DEFAULT_BASE, base_width=None):
  """The lr the schedule is built on: base, or base · base_width / d_model with base_width.

  Adam's best learning rate falls roughly as 1/width (the μP rule for hidden matrices,
  Yang et al. 2022): a base tuned at d_model = base_width then carries to other widths,
  where one fixed lr is too high for the wide models.
  """
  if not base_width:
    return base
  if not d_model:
    raise ValueError("learning_rate_schedule: base_width needs the model's d_model")
  return base * base_width / d_model


def bound_peak_learning_rate(d_model):
  """peak_learning_rate under the current gin bindings of learning_rate_schedule."""
  bindings = gin.get_bindings(learning_rate_schedule)
  return peak_learning_rate(d_model, bindings.get("base", DEFAULT_BASE),
                            bindings.get("base_width"))


@gin.configurable
def learning_rate_schedule(step, total_steps, base=DEFAULT_BASE, schedule="constant",
                           warmup_steps=0, min_ratio=0.0, base_width=None, d_model=None):
  """lr(step) with w = warmup_steps, T = total_steps, r = min_ratio, and base the
  peak_learning_rate (scaled by base_width / d_model when base_width is set):

    step < w:   base · (step + 1) / w                  (linear warmup)
    otherwise, with p = min(1, (step − w) / max(T − w, 1)):
      constant: base
      linear:   base · (r + (1 − r) · (1 − p))
      cosine:   base · (r + (1 − r) · (1 + cos π p) / 2)
      rsqrt:    base · √(w' / max(step, w')),  w' = max(w, 1)
  Linear and cosine end at base · r at step T and stay there; min_ratio is theirs.
  The warmup counts the update being made (step + 1): the first update (step 0) already
  moves the weights with base / w, and step w − 1 reaches base.
  """
  if schedule not in SCHEDULES:
    raise ValueError("learning_rate_schedule: unknown schedule %r (choose from %s)"
                     % (schedule, ", ".join(SCHEDULES)))
  base = peak_learning_rate(d_model, base, base_width)
  step = tf.cast(step, tf.float32)
  if schedule == "constant":
    decayed = tf.constant(base, tf.float32)
  elif schedule == "rsqrt":
    w = float(max(warmup_steps, 1))
    decayed = base * tf.sqrt(w / tf.maximum(step, w))
  else:
    progress = tf.clip_by_value(
        (step - warmup_steps) / float(max(total_steps - warmup_steps, 1)), 0.0, 1.0)
    if schedule == "linear":
      fraction = 1.0 - progress
    else:
      fraction = 0.5 * (1.0 + tf.cos(math.pi * progress))
    decayed = base * (min_ratio + (1.0 - min_ratio) * fraction)
  if warmup_steps <= 0:
    return decayed
  return tf.where(step < warmup_steps, base * (step + 1.0) / warmup_steps, decayed)
