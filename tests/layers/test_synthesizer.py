"""Dense and random Synthesizer against numpy (Tay et al. 2021, "Synthesizer:
rethinking self-attention in transformer models"), causal."""
import math

import numpy as np
import pytest

from layers import variables
from layers.synthesizer import Synthesizer
from tests import numpy_reference as ref
from tests.layers.layer_testing import LayerUnderTest, random_input


def synthesizer_reference(x, v, kind):
  """Σ_heads (softmax_j(B + log M) · x W_v) W_o with B from an MLP of x_i or learned."""
  if kind == "dense":
    hidden = np.maximum(np.einsum("bnd,dhk->bnhk", x, v["w1"]), 0.0)
    logits = np.einsum("bnhk,hkm->bhnm", hidden, v["w2"])
  else:
    logits = v["r"][None]
  mask = ref.causal_mask(x.shape[1])
  a = ref.softmax(np.where(mask > 0, logits, -np.inf))
  values = np.einsum("bnd,dhk->bhnk", x, v["v"])
  o = np.einsum("bhnm,bhmk->bhnk", a, values)
  return np.einsum("bhnk,hkd->bnd", o, v["o"])


@pytest.mark.parametrize("kind", ["dense", "random"])
def test_synthesizer_matches_numpy_reference(kind):
  layer = LayerUnderTest(Synthesizer(kind=kind, heads=2))
  x = random_input()
  for values in layer.values_at_init_then_random():
    np.testing.assert_allclose(layer.y(x), synthesizer_reference(x, values, kind),
                               rtol=1e-5, atol=1e-6)


def test_random_synthesizer_map_is_a_per_head_seq_map():
  layer = LayerUnderTest(Synthesizer(kind="random", heads=4), length=5)
  assert layer.shapes()["r"].dimension_names == ["heads", "length", "memory_length"]
  assert layer.shapes()["r"].to_integer_list == [4, 5, 5]
  assert layer.records()["r"].role == variables.SEQ_MAP


def test_dense_synthesizer_starts_near_a_causal_running_mean():
  # Small weights give near-equal logits, so each row averages positions j <= i.
  layer = LayerUnderTest(Synthesizer(kind="dense", heads=2))
  v = layer.values()
  x = random_input()
  mean = np.cumsum(x, 1) / np.arange(1, x.shape[1] + 1)[:, None]
  expected = np.einsum("bnd,dhk,hke->bne", mean, v["v"], v["o"])
  np.testing.assert_allclose(layer.y(x), expected, rtol=0.0,
                             atol=0.01 * math.sqrt(np.mean(expected ** 2)))
