"""Every model in gin/models/ trains on Shakespeare from the CLI, uses its context (it
beats every model that sees only the current byte) and scores causally."""
import json
import math
import os

import numpy as np
import pytest

from tests import cli_testing as cli
from tests import context_use

MODELS_DIR = os.path.join(cli.REPO, "gin", "models")
# base.gin is the size every model file includes, not a model of its own (its default
# token mixer is the Transformer's attention, trained here as transformer.gin).
MODEL_FILES = sorted(f for f in os.listdir(MODELS_DIR)
                     if f.endswith(".gin") and f != "base.gin")

SEQUENCE_LENGTH, BATCH_SIZE, EVAL_STEPS = 32, 16, 20
# Tiny and fast: one block of width 32. Every heads setting in gin/models/ (1, 4, 8)
# divides 32; Attention.heads = 2 comes from cli_testing.TINY.
BINDINGS = ["run.batch_size = %d" % BATCH_SIZE,
            "run.sequence_length = %d" % SEQUENCE_LENGTH,
            "run.eval_steps = %d" % EVAL_STEPS, "run.train_steps = 600",
            "learning_rate_schedule.base = 3e-3"]
# The identity as token mixer: each position sees only its own byte.
CONTEXT_BLIND = ["import tests.identity_mixer", "GPT.token_mixer = @IdentityMixer"]

# Convolutions by FFT: every position's rounding reaches every output.
FFT_MODELS = {"hyena.gin"}

@pytest.fixture(scope="module")
def thresholds():
  """(order-0, order-1) held-out cross-entropies in nats on the bytes `eval` scores:
  the first EVAL_STEPS · BATCH_SIZE held-out windows (they are read in order).

  Order 0 is the byte unigram (3.26 nats on these bytes): a model above it has not
  learned even byte frequencies. Order 1 is the bigram counted on all 4.8 MB of
  training bytes (2.47 nats): the best a model that sees only the current byte can
  learn, so a context-blind model (the identity as token mixer) cannot get below it,
  while every model here that mixes tokens gets below it in 600 steps (measured
  2.04-2.38 nats, the ReZero presets highest; the identity mixer 2.50).
  """
  return context_use.held_out_thresholds("shakespeare", SEQUENCE_LENGTH,
                                         EVAL_STEPS * BATCH_SIZE)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """One set of Shakespeare shards for every model (same windows, written once)."""
  return tmp_path_factory.mktemp("shakespeare_shards")


def train_argv(run, model_file, data_dir, *bindings):
  return cli.train_argv(run, *BINDINGS, "run.data_dir = '%s'" % data_dir, *bindings,
                        gin_file="gin/models/" + model_file)


def check_it_uses_context(run, thresholds):
  """The training loss starts at ln 256 and ends below the order-0 entropy, and the
  held-out loss is below the order-1 cross-entropy."""
  order_0, order_1 = thresholds
  losses = [r["loss"] for r in cli.metrics(run)]
  assert len(losses) == 600
  assert losses[0] == pytest.approx(math.log(256), abs=0.1)
  assert np.mean(losses[-20:]) < order_0, (np.mean(losses[-20:]), order_0)
  [held_out] = cli.metrics(run, "eval_metrics.jsonl")
  assert held_out["eval_loss"] < order_1, (held_out["eval_loss"], order_1)


# Scored text: exactly one context window (sequence_length + 1 bytes), so every
# prediction comes from the same window. The second text changes only byte K: the
# predictions of bytes 1..K-1 (the first K-1 log2_probs) see only the shared prefix of
# K bytes and must be bit-identical; the prediction of byte K (its target changed) must
# differ, and so must the later predictions (same targets, but their context holds the
# change), so the identical prefix is not just a model that ignores context. The later
# ones are compared as a whole: a small-init map can leave the change below float32
# resolution at some positions.
TEXT = "But, soft! what light through yon"
K = 17
CHANGED = TEXT[:K] + "#" + TEXT[K + 1:]
assert len(TEXT.encode()) == SEQUENCE_LENGTH + 1 and TEXT[K] != "#"


BLIND = "context_blind"  # the Transformer with the identity as token mixer


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
  """Trains every model (and the context-blind one) and scores TEXT and CHANGED with
  it, all in one process: {name: (run dir, [train, score TEXT, score CHANGED] results)}.
  """
  base = tmp_path_factory.mktemp("models")
  argvs, names = [], []
  for name in MODEL_FILES + [BLIND]:
    run = base / name
    bindings = CONTEXT_BLIND if name == BLIND else []
    argvs += [train_argv(run, "transformer.gin" if name == BLIND else name, data_dir,
                         *bindings),
              ["score", "--model_dir", run, "--text", TEXT],
              ["score", "--model_dir", run, "--text", CHANGED]]
    names.append((name, run))
  results = cli.mtfzoo_many(argvs, base / "results.json")
  return {name: (run, results[3 * i:3 * i + 3]) for i, (name, run) in enumerate(names)}


def trained(runs, name):
  """The run directory of a model whose training exited 0."""
  run, (training, _, _) = runs[name]
  assert training["code"] == 0, training
  return run


def scores(runs, name):
  _, (_, a, b) = runs[name]
  assert a["code"] == 0 and b["code"] == 0, (a, b)
  return json.loads(a["stdout"]), json.loads(b["stdout"])


@pytest.mark.slow
@pytest.mark.parametrize("model_file", MODEL_FILES)
def test_model_trains_on_shakespeare_uses_context_and_scores_causally(
    model_file, runs, data_dir, thresholds):
  check_it_uses_context(trained(runs, model_file), thresholds)
  assert "shakespeare-train-L%d" % SEQUENCE_LENGTH in os.listdir(data_dir)

  a, b = scores(runs, model_file)
  for s in (a, b):
    assert s["bytes"] == len(TEXT) and len(s["log2_probs"]) == len(TEXT) - 1
    assert all(math.isfinite(x) and x <= 0 for x in s["log2_probs"])
  if model_file in FFT_MODELS:  # causal up to float32 rounding
    np.testing.assert_allclose(a["log2_probs"][:K - 1], b["log2_probs"][:K - 1],
                               rtol=1e-5)
  else:
    assert a["log2_probs"][:K - 1] == b["log2_probs"][:K - 1]
  assert a["log2_probs"][K - 1] != b["log2_probs"][K - 1]
  assert a["log2_probs"][K:] != b["log2_probs"][K:]


@pytest.mark.slow
def test_a_context_blind_model_fails_the_context_check(runs, thresholds):
  """The check above can fail: the Transformer with the identity as token mixer trains
  (below order 0) but stays above the order-1 cross-entropy on held-out bytes."""
  run = trained(runs, BLIND)
  with pytest.raises(AssertionError):
    check_it_uses_context(run, thresholds)
  order_0, order_1 = thresholds
  losses = [r["loss"] for r in cli.metrics(run)]
  assert len(losses) == 600 and np.mean(losses[-20:]) < order_0  # it did learn
  [held_out] = cli.metrics(run, "eval_metrics.jsonl")
  assert held_out["eval_loss"] >= order_1
