"""The optimizer presets in gin/optimizers/ bind what their first line says."""
import os

import gin
import pytest

from optimizers import SM3, Adam

GIN_DIR = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "gin",
                       "optimizers")


def configured(preset, optimizer_class):
  """An optimizer built under only `preset` (`run.*` belongs to the trainer)."""
  path = os.path.join(GIN_DIR, preset)
  with open(path) as f:
    assert f.readline().startswith("# ")
  gin.clear_config()
  try:
    gin.parse_config_file(path, skip_unknown=True)
    return optimizer_class(learning_rate=0.1)
  finally:
    gin.clear_config()


@pytest.mark.parametrize("preset, beta1, beta2, epsilon", [
    ("adam.gin", 0.9, 0.99, 1e-8),
    ("adam_pangu.gin", 0.9, 0.95, 1e-8),
])
def test_adam_presets_set_the_betas_and_epsilon(preset, beta1, beta2, epsilon):
  adam = configured(preset, Adam)
  assert (adam.beta1, adam.beta2, adam.epsilon) == (beta1, beta2, epsilon)


def test_sm3_preset_uses_nesterov_momentum_0_9():
  sm3 = configured("sm3.gin", SM3)
  assert (sm3.momentum, sm3.nesterov) == (0.9, True)


EXPERIMENTS_DIR = os.path.join(GIN_DIR, os.pardir, "experiments")


@pytest.mark.parametrize("experiment, lr", [
    ("mixer_sm3_lr0.003.gin", 0.003), ("mixer_sm3.gin", 0.01),
    ("mixer_sm3_lr0.03.gin", 0.03)])
def test_sm3_sweep_experiments_set_their_learning_rate(experiment, lr):
  """The SM3-vs-Adam sweep: heavy-ball SM3 at 0.01 is the SM3 paper's 0.1 (see
  test_sm3_heavy_ball_at_lr_times_1_minus_mu_equals_the_papers_ema_form)."""
  from trainer import config  # pylint: disable=g-import-not-at-top
  try:
    config.parse([os.path.join(EXPERIMENTS_DIR, experiment)])
    bindings = gin.config_str()
  finally:
    gin.clear_config()
  assert "learning_rate_schedule.base = %r" % lr in bindings
  assert "run.optimizer = @SM3" in bindings
  assert "SM3.momentum = 0.9" in bindings
