"""gMLP's spatial gating unit against numpy (Liu et al. 2021, "Pay attention to MLPs"):
W ≈ 0 and b = 1 at init, causal, with the tanh-constrained gate variant."""
import numpy as np
import pytest

from layers import variables
from layers.gmlp import GMLP
from tests import numpy_reference as ref
from tests.layers.layer_testing import LayerUnderTest, random_input

GATES = {"identity": lambda s: s, "tanh": np.tanh,
         "sigmoid": lambda s: 1.0 / (1.0 + np.exp(-s))}


def gmlp_reference(x, v, split, gate):
  """(u ⊙ f((W ⊙ M) · LayerNorm(v) + b)) V with (u, v) = the halves of gelu(x U)."""
  if split:
    u, z = ref.gelu(x @ v["in_u"]), ref.gelu(x @ v["in_v"])
  else:
    u = z = ref.gelu(x @ v["in"])
  z = ref.layer_norm(z, v["gate_norm/scale"], v["gate_norm/bias"])
  mask = ref.causal_mask(x.shape[1])
  s = np.einsum("ij,bjf->bif", v["spatial"] * mask, z) + v["spatial_bias"][:, None]
  return (u * GATES[gate](s)) @ v["out"]


@pytest.mark.parametrize("split,gate", [(True, "identity"), (True, "tanh"),
                                        (False, "sigmoid"), (False, "identity")])
def test_gmlp_matches_numpy_reference(split, gate):
  layer = LayerUnderTest(GMLP(multiplier=2, split=split, gate=gate))
  x = random_input()
  for values in layer.values_at_init_then_random():
    np.testing.assert_allclose(layer.y(x), gmlp_reference(x, values, split, gate),
                               rtol=1e-5, atol=1e-6)


def test_gmlp_split_halves_the_hidden_width():
  split = LayerUnderTest(GMLP(multiplier=6), d_model=8).shapes()
  assert split["in_u"].to_integer_list == split["in_v"].to_integer_list == [8, 24]
  assert split["out"].to_integer_list == [24, 8]
  whole = LayerUnderTest(GMLP(multiplier=6, split=False), d_model=8).shapes()
  assert whole["in"].to_integer_list == [8, 48]
  assert whole["out"].to_integer_list == [48, 8]


def test_gmlp_gate_starts_near_one():
  length = 6
  layer = LayerUnderTest(GMLP(), length=length)
  values = layer.values()
  assert layer.records()["spatial_bias"].role == variables.BIAS
  assert layer.records()["spatial"].role == variables.SEQ_MAP
  np.testing.assert_array_equal(values["spatial_bias"], np.ones(length))
  assert values["spatial"].shape == (length, length)
  assert np.abs(values["spatial"]).max() < 5 * 0.02 / length
