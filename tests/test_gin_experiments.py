"""Every experiment file in gin/experiments/ is a valid run configuration, and the
setting its name states is the one it binds (lr0.02 -> learning_rate_schedule.base,
clip_0.3 -> GradientClipping.global_norm, ...), so a typo in a long batch's file fails
here instead of hours into the batch."""
import os
import re

import gin
import pytest

from trainer import config
from trainer.run import Run

EXPERIMENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "gin", "experiments")
FILES = sorted(os.path.relpath(os.path.join(root, name), EXPERIMENTS)
               for root, _, names in os.walk(EXPERIMENTS) for name in names
               if name.endswith(".gin"))
NUMBER = r"(\d+(?:[._]\d+)?)"
# A name's stated setting -> the gin parameter that must hold it.
NAMED_SETTINGS = (
    (re.compile(r"_lr" + NUMBER + r"(?:_|\.gin$)"), "learning_rate_schedule.base"),
    (re.compile(r"clip_?" + NUMBER + r"(?:_|\.gin$)"), "GradientClipping.global_norm"),
    (re.compile(r"agc_?" + NUMBER + r"(?:_|\.gin$)"), "GradientClipping.agc"),
    (re.compile(r"beta2_" + NUMBER + r"\.gin$"), "Adam.beta2"),
)


def number(text):
  """'0.02', '0_3' or '095' (beta2_095: the digits after '0.') -> float."""
  if re.fullmatch(r"0\d+", text):
    return float("0." + text[1:])
  return float(text.replace("_", "."))


@pytest.fixture(autouse=True)
def clear_gin_config():
  yield
  gin.clear_config()


def test_the_experiment_tree_is_found():
  assert "long/transformer.gin" in FILES and "long/push/mixer_lr0.02.gin" in FILES


@pytest.mark.parametrize("experiment", FILES)
def test_experiment_parses_builds_a_run_and_binds_what_its_name_says(experiment):
  if experiment.startswith("enwik8"):  # needs the user's copy of enwik8 to build a Run
    config.parse([os.path.join(EXPERIMENTS, experiment)],
                 ["run.corpus = 'enwik8:/nonexistent'"])
  else:
    config.parse([os.path.join(EXPERIMENTS, experiment)])
  Run()
  name = os.path.basename(experiment)
  for pattern, parameter in NAMED_SETTINGS:
    match = pattern.search(name)
    if match:
      assert gin.query_parameter(parameter) == pytest.approx(number(match.group(1))), (
          experiment, parameter)
  if "_deep" in name:
    assert gin.query_parameter("GPT.num_layers") > 4
