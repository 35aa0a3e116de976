"""CONTAINER against numpy: α·attention + β·(W⊙M) with learned scalars α, β (Gao et
al. 2021, "Container: context aggregation network"), causal."""
import math

import numpy as np

from layers import variables
from layers.container import Container
from tests import numpy_reference as ref
from tests.layers.layer_testing import LayerUnderTest, random_input


def container_reference(x, v):
  """Σ_heads ((α softmax(QKᵀ/√d_head + log M) + β (W ⊙ M)) V) W_o."""
  q, k, values = (np.einsum("bnd,dhk->bhnk", x, v[n]) for n in "qkv")
  mask = ref.causal_mask(x.shape[1])
  logits = np.einsum("bhik,bhjk->bhij", q, k) / math.sqrt(q.shape[-1])
  attention = ref.softmax(np.where(mask > 0, logits, -np.inf))
  a = v["alpha"] * attention + v["beta"] * (v["static_map"] * mask)[None]
  o = np.einsum("bhij,bhjk->bhik", a, values)
  return np.einsum("bhnk,hkd->bnd", o, v["o"])


def test_container_matches_numpy_reference():
  layer = LayerUnderTest(Container(heads=2))
  x = random_input()
  for values in layer.values_at_init_then_random():
    np.testing.assert_allclose(layer.y(x), container_reference(x, values),
                               rtol=1e-5, atol=1e-6)


def test_container_mixing_scalars_start_at_one():
  layer = LayerUnderTest(Container(heads=2))
  values, records = layer.values(), layer.records()
  for name in ("alpha", "beta"):
    assert values[name] == 1.0
    assert records[name].role == variables.REZERO
  assert records["static_map"].role == variables.SEQ_MAP
  assert layer.shapes()["static_map"].dimension_names == ["heads", "length",
                                                          "memory_length"]
