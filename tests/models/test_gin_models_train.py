"""Every model in gin/models/ trains on Shakespeare from the CLI and scores causally."""
import json
import math
import os

import numpy as np
import pytest

from tests import cli_testing as cli

MODELS_DIR = os.path.join(cli.REPO, "gin", "models")
# base.gin is the size every model file includes, not a model of its own (its default
# token mixer is the Transformer's attention, trained here as transformer.gin).
MODEL_FILES = sorted(f for f in os.listdir(MODELS_DIR)
                     if f.endswith(".gin") and f != "base.gin")

SEQUENCE_LENGTH = 32
# Tiny and fast: one block of width 32. Every heads setting in gin/models/ (1, 4, 8)
# divides 32; Attention.heads = 2 comes from cli_testing.TINY.
BINDINGS = ["run.batch_size = 8", "run.sequence_length = %d" % SEQUENCE_LENGTH,
            "run.eval_steps = 1", "run.train_steps = 50",
            "learning_rate_schedule.base = 3e-3"]

# The loss starts at ln 256 = 5.55 nats (uniform over bytes) and must end at least 1.5
# nats lower. That is about 10x the step-to-step noise of a 256-byte batch (0.1-0.2
# nats) and two thirds of the way from uniform to the byte unigram entropy of the corpus
# (3.30 nats), which 50 steps of a one-block model approach (measured: 2.2-2.4 nats
# lower for every model here).
MARGIN = 1.5
# Convolutions by FFT: every position's rounding reaches every output.
FFT_MODELS = {"hyena.gin"}

# Scored text: exactly one context window (sequence_length + 1 bytes), so every
# prediction comes from the same window. The second text changes only byte K: the
# predictions of bytes 1..K-1 (the first K-1 log2_probs) see only the shared prefix of
# K bytes and must be bit-identical; the prediction of byte K (its target changed) must
# differ, and so must the later predictions (same targets, but their context holds the
# change), so the identical prefix is not just a model that ignores context. The later
# ones are compared as a whole: after 50 steps ReZero's |α| < 1e-3 on the small-init
# mixer maps leaves the change below float32 resolution at some positions.
TEXT = "But, soft! what light through yon"
K = 17
CHANGED = TEXT[:K] + "#" + TEXT[K + 1:]
assert len(TEXT.encode()) == SEQUENCE_LENGTH + 1 and TEXT[K] != "#"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """One set of Shakespeare shards for every model (same windows, written once)."""
  return tmp_path_factory.mktemp("shakespeare_shards")


def score(run, text):
  return json.loads(cli.mtfzoo("score", "--model_dir", run, "--text", text).stdout)


@pytest.mark.slow
@pytest.mark.parametrize("model_file", MODEL_FILES)
def test_model_trains_on_shakespeare_and_scores_causally(model_file, data_dir,
                                                         tmp_path):
  run = tmp_path / "run"
  cli.train(run, *BINDINGS, "run.data_dir = '%s'" % data_dir,
            gin_file="gin/models/" + model_file)
  assert "shakespeare-train-L%d" % SEQUENCE_LENGTH in os.listdir(data_dir)

  losses = [r["loss"] for r in cli.metrics(run)]
  assert len(losses) == 50
  assert losses[0] == pytest.approx(math.log(256), abs=0.1)
  assert np.mean(losses[-5:]) < losses[0] - MARGIN, losses

  a, b = score(run, TEXT), score(run, CHANGED)
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
