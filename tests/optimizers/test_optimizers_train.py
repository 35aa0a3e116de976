"""SM3 and Adam from the CLI: both train the quickstart model; SM3 keeps about half the
state."""
import json
import math

import numpy as np
import pytest

from tests import cli_testing as cli
from tests import context_use

OPTIMIZERS = ("sm3", "adam")
SEQUENCE_LENGTH, BATCH_SIZE, EVAL_STEPS, STEPS = 32, 16, 20, 600
# gin/quickstart.gin (Transformer, Shakespeare, its own learning rate 2e-3) shrunk for
# speed: one block of width 32, batch 16 x 32 bytes, a 5-step warmup instead of 50.
SHRINK = ["GPT.num_layers = 1", "GPT.d_model = 32", "Attention.heads = 2",
          "run.batch_size = %d" % BATCH_SIZE,
          "run.sequence_length = %d" % SEQUENCE_LENGTH,
          "run.eval_steps = %d" % EVAL_STEPS, "run.train_steps = %d" % STEPS,
          "learning_rate_schedule.warmup_steps = 5"]


def bindings(*params):
  args = []
  for p in params:
    args += ["--gin_param", p]
  return args


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("shakespeare_shards")


@pytest.fixture(scope="module")
def thresholds():
  """Held-out order-0 and order-1 cross-entropies (tests/context_use.py): measured
  2.34 (SM3) and 2.20 (Adam) nats held out against an order-1 threshold of 2.47."""
  return context_use.held_out_thresholds("shakespeare", SEQUENCE_LENGTH,
                                         EVAL_STEPS * BATCH_SIZE)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_quickstart_model_trains_with_the_optimizer_and_uses_context(
    optimizer, data_dir, thresholds, tmp_path):
  """From ln 256 the training loss ends below the held-out bytes' order-0
  cross-entropy and the held-out loss below their order-1 cross-entropy, which no
  model that ignores the bytes before the current one can reach."""
  order_0, order_1 = thresholds
  run = tmp_path / optimizer
  cli.mtfzoo("train", "--gin_file", "gin/quickstart.gin",
             "--gin_file", "gin/optimizers/%s.gin" % optimizer, "--model_dir", run,
             *bindings(*SHRINK, "run.data_dir = '%s'" % data_dir))
  config = (run / "config.gin").read_text()
  assert "run.optimizer = @%s" % {"sm3": "SM3", "adam": "Adam"}[optimizer] in config
  losses = [r["loss"] for r in cli.metrics(run)]
  assert len(losses) == STEPS
  assert losses[0] == pytest.approx(math.log(256), abs=0.1)
  assert np.mean(losses[-20:]) < order_0, (np.mean(losses[-20:]), order_0)
  [held_out] = cli.metrics(run, "eval_metrics.jsonl")
  assert held_out["eval_loss"] < order_1, (held_out["eval_loss"], order_1)


@pytest.mark.slow
def test_bench_reports_sm3_state_at_most_0_55_of_adams(tmp_path):
  # The state's bytes are counted, not timed: the fewest steps, no sampling speeds.
  results = cli.mtfzoo_many(
      [["bench", "--gin_file", "gin/models/transformer.gin",
        "--gin_file", "gin/optimizers/%s.gin" % optimizer, "--bench_warmup", "1",
        "--bench_steps", "1", "--nosampling_speeds",
        *cli.gin_params("run.batch_size = 8", "run.sequence_length = 32")]
       for optimizer in ("sm3", "adam")], tmp_path / "results.json")
  assert [r["code"] for r in results] == [0, 0], results
  sm3, adam = [json.loads(r["stdout"]) for r in results]
  assert sm3["params"] == adam["params"] > 0
  # Adam: two float32 slots (m, v) per parameter, plus a step counter per variable.
  assert adam["optimizer_state_bytes"] >= 2 * 4 * adam["params"]
  # SM3 with momentum: one float32 slot per parameter plus an accumulator per dimension.
  assert sm3["optimizer_state_bytes"] >= 4 * sm3["params"]
  assert sm3["optimizer_state_bytes"] <= 0.55 * adam["optimizer_state_bytes"]
