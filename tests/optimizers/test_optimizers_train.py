"""SM3 and Adam from the CLI: both train the quickstart model; SM3 keeps about half the
state."""
import json
import math

import numpy as np
import pytest

from tests import cli_testing as cli

OPTIMIZERS = ("sm3", "adam")
# gin/quickstart.gin (Transformer, Shakespeare, its own learning rate 2e-3) shrunk for
# speed: one block of width 32, batch 8 x 32 bytes, a 5-step warmup instead of 50.
SHRINK = ["GPT.num_layers = 1", "GPT.d_model = 32", "Attention.heads = 2",
          "run.batch_size = 8", "run.sequence_length = 32", "run.eval_steps = 1",
          "run.train_steps = 40", "learning_rate_schedule.warmup_steps = 5"]
# From ln 256 = 5.55 nats, at least 1 nat lower: several times the step-to-step noise
# (0.1-0.2 nats); measured 2.3 (SM3) and 2.1 (Adam) nats lower.
MARGIN = 1.0


def bindings(*params):
  args = []
  for p in params:
    args += ["--gin_param", p]
  return args


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("shakespeare_shards")


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_quickstart_model_trains_with_the_optimizer(optimizer, data_dir, tmp_path):
  run = tmp_path / optimizer
  cli.mtfzoo("train", "--gin_file", "gin/quickstart.gin",
             "--gin_file", "gin/optimizers/%s.gin" % optimizer, "--model_dir", run,
             *bindings(*SHRINK, "run.data_dir = '%s'" % data_dir))
  config = (run / "config.gin").read_text()
  assert "run.optimizer = @%s" % {"sm3": "SM3", "adam": "Adam"}[optimizer] in config
  losses = [r["loss"] for r in cli.metrics(run)]
  assert len(losses) == 40
  assert losses[0] == pytest.approx(math.log(256), abs=0.1)
  assert np.mean(losses[-5:]) < losses[0] - MARGIN, losses


def bench(optimizer):
  result = cli.mtfzoo("bench", "--gin_file", "gin/models/transformer.gin",
                      "--gin_file", "gin/optimizers/%s.gin" % optimizer,
                      *cli.gin_params("run.batch_size = 8", "run.sequence_length = 32"))
  lines = result.stdout.strip().splitlines()
  assert len(lines) == 1, result.stdout
  return json.loads(lines[0])


@pytest.mark.slow
def test_bench_reports_sm3_state_at_most_0_55_of_adams():
  sm3, adam = bench("sm3"), bench("adam")
  assert sm3["params"] == adam["params"] > 0
  # Adam: two float32 slots (m, v) per parameter, plus a step counter per variable.
  assert adam["optimizer_state_bytes"] >= 2 * 4 * adam["params"]
  # SM3 with momentum: one float32 slot per parameter plus an accumulator per dimension.
  assert sm3["optimizer_state_bytes"] >= 4 * sm3["params"]
  assert sm3["optimizer_state_bytes"] <= 0.55 * adam["optimizer_state_bytes"]
