"""Every learning-rate schedule against plain Python math, in and after warmup."""
import math

import numpy as np
import pytest

from mtf_compat import tf
from optimizers import learning_rate_schedule

BASE, WARMUP, TOTAL, MIN_RATIO = 0.01, 10, 110, 0.1
STEPS = [0, 1, 5, 9, 10, 11, 35, 60, 109, 110, 200]


def schedule_values(steps, **kwargs):
  with tf.Graph().as_default():
    step = tf.placeholder(tf.int64, [])
    lr = learning_rate_schedule(step, **kwargs)
    assert lr.dtype == tf.float32
    with tf.Session() as sess:
      return [sess.run(lr, {step: s}) for s in steps]


def reference(step, schedule, warmup=WARMUP, total=TOTAL, base=BASE, r=MIN_RATIO):
  if step < warmup:
    return base * (step + 1) / warmup
  p = min(1.0, (step - warmup) / (total - warmup))
  return {"constant": base,
          "linear": base * (r + (1 - r) * (1 - p)),
          "cosine": base * (r + (1 - r) * 0.5 * (1 + math.cos(math.pi * p))),
          "rsqrt": base * math.sqrt(max(warmup, 1) / max(step, warmup, 1))}[schedule]


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine", "rsqrt"])
def test_schedule_matches_python_math_during_and_after_warmup(schedule):
  values = schedule_values(STEPS, total_steps=TOTAL, base=BASE, schedule=schedule,
                           warmup_steps=WARMUP, min_ratio=MIN_RATIO)
  expected = [reference(s, schedule) for s in STEPS]
  np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-9)
  # The first update is not wasted: step 0 already has base / warmup (never 0).
  np.testing.assert_allclose(values[0], BASE / WARMUP, rtol=1e-6)
  np.testing.assert_allclose(values[STEPS.index(WARMUP - 1)], BASE, rtol=1e-6)
  np.testing.assert_allclose(values[STEPS.index(WARMUP)], BASE, rtol=1e-6)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_decaying_schedules_reach_base_times_min_ratio_at_total_steps(schedule):
  values = schedule_values([TOTAL, 2 * TOTAL], total_steps=TOTAL, base=BASE,
                           schedule=schedule, warmup_steps=WARMUP, min_ratio=MIN_RATIO)
  np.testing.assert_allclose(values, [BASE * MIN_RATIO] * 2, rtol=1e-6)


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine", "rsqrt"])
def test_schedule_without_warmup_starts_at_base(schedule):
  steps = [0, 1, 4, 50, 100]
  values = schedule_values(steps, total_steps=100, base=BASE, schedule=schedule)
  expected = [reference(s, schedule, warmup=0, total=100, r=0.0) for s in steps]
  np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(values[0], BASE, rtol=1e-6)


def test_unknown_schedule_is_a_clear_value_error():
  with pytest.raises(ValueError, match="unknown schedule 'exponential'"):
    learning_rate_schedule(tf.constant(0), 100, schedule="exponential")


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_base_width_scales_the_whole_schedule_as_one_over_d_model(schedule):
  """base is the lr at d_model = base_width: at 4x the width every step's lr is 1/4 of
  base's schedule (warmup included), and at base_width itself it is base's schedule."""
  for d_model, peak in ((256, BASE / 4), (64, BASE)):
    values = schedule_values(STEPS, total_steps=TOTAL, base=BASE, schedule=schedule,
                             warmup_steps=WARMUP, min_ratio=MIN_RATIO, base_width=64,
                             d_model=d_model)
    expected = [reference(s, schedule, base=peak) for s in STEPS]
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-9)


def test_without_base_width_the_width_does_not_change_the_lr():
  values = schedule_values([0, 50], total_steps=100, base=BASE, d_model=1024)
  np.testing.assert_allclose(values, [BASE, BASE], rtol=1e-6)


def test_base_width_without_a_d_model_is_an_error():
  with pytest.raises(ValueError, match="base_width"):
    learning_rate_schedule(tf.constant(0), 100, base_width=64)
