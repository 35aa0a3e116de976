"""mtfzoo score: the model's own loss on a text, causal, over texts longer than the
context."""
import json
import math

import numpy as np
import pytest

from tests import cli_testing as cli


def test_score_of_a_text_equals_the_models_own_loss_on_it(tmp_path):
  """The held-out split of this corpus is exactly one window of 17 bytes, so `eval`
  (batch 1) computes the model's cross-entropy on that text; `score` must agree. With
  a z-loss (PaLM, Chowdhery et al. 2022: c·log²Z, here c·(ln 256)² ≈ 0.3 nats at
  init for c = 0.01), the z-term is optimised but in neither bpc."""
  window = b"But, soft! what l"
  text = (b"What light through yonder window breaks? " * 4)[:153] + window
  assert len(text) == 170 and text[153:] == window
  corpus = tmp_path / "corpus.txt"
  corpus.write_bytes(text)
  run = tmp_path / "run"
  cli.train(run, "run.corpus = '%s'" % corpus, "run.train_steps = 3",
            "run.batch_size = 1", "GPT.z_loss = 0.01")
  eval_out = cli.mtfzoo("eval", "--model_dir", run).stdout
  bpc = float(eval_out.strip().split("bpc: ")[-1])
  score = json.loads(cli.mtfzoo("score", "--model_dir", run, "--text",
                                window.decode()).stdout)
  assert score["bytes"] == 17 and len(score["log2_probs"]) == 16
  assert score["bpc"] == pytest.approx(-np.mean(score["log2_probs"]))
  assert score["bpc"] == pytest.approx(bpc, abs=1e-4)  # eval prints 4 decimals


def test_score_is_causal_and_covers_long_texts(tmp_path):
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  run = tmp_path / "run"
  cli.train(run, "run.corpus = '%s'" % corpus, "run.train_steps = 3")
  text = "To be, or not to be, that is the question: whether 'tis nobler"
  changed = text[:40] + text[40:].upper()
  a = json.loads(cli.mtfzoo("score", "--model_dir", run, "--text", text).stdout)
  b = json.loads(cli.mtfzoo("score", "--model_dir", run, "--text", changed).stdout)
  assert a["bytes"] == len(text) and len(a["log2_probs"]) == len(text) - 1
  # Bytes 1..40 are predicted from text[:40] only: identical in both scores.
  assert a["log2_probs"][:39] == b["log2_probs"][:39]
  assert a["log2_probs"][39:] != b["log2_probs"][39:]
  assert all(math.isfinite(x) and x <= 0 for x in a["log2_probs"])
