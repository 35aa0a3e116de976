"""The group (block-diagonal per head) feed-forward against numpy: one dense
feed-forward per head, no mixing across heads."""
import numpy as np
import pytest

from layers.group_feed_forward import GroupFeedForward
from tests import numpy_reference as ref
from tests.layers.layer_testing import LayerUnderTest, random_input
from tests.mtf_testing import rng


ACTIVATIONS = {"gelu": ref.gelu, "relu": lambda h: np.maximum(h, 0.0)}


def group_feed_forward_reference(x, v, heads, glu, activation):
  """Per head h: act(x[h] W_in[h]) (⊙ x[h] W_gate[h]) W_out[h]."""
  b, n, d = x.shape
  xh = x.reshape(b, n, heads, d // heads)
  h = ACTIVATIONS[activation](np.einsum("bnhk,hkf->bnhf", xh, v["in"]))
  if glu:
    h = h * np.einsum("bnhk,hkf->bnhf", xh, v["gate"])
  return np.einsum("bnhf,hfk->bnhk", h, v["out"]).reshape(b, n, d)


@pytest.mark.parametrize("glu,activation", [(False, "gelu"), (True, "relu")])
def test_group_feed_forward_matches_numpy_reference(glu, activation):
  layer = LayerUnderTest(GroupFeedForward(heads=2, multiplier=3, activation=activation,
                                          glu=glu))
  x = random_input()
  for values in layer.values_at_init_then_random():
    np.testing.assert_allclose(layer.y(x),
                               group_feed_forward_reference(x, values, 2, glu,
                                                            activation),
                               rtol=1e-5, atol=1e-6)


def test_group_feed_forward_is_block_diagonal_per_head():
  layer = LayerUnderTest(GroupFeedForward(heads=4))
  layer.randomize()
  shapes = layer.shapes()
  assert shapes["in"].to_integer_list == [4, 2, 8]
  assert shapes["out"].to_integer_list == [4, 8, 2]
  x = random_input()
  perturbed = x.copy()
  perturbed[..., 2:4] += rng(1).randn(*x.shape[:2], 2)  # head 1's channels
  y, y_perturbed = layer.y(x), layer.y(perturbed)
  changed = np.any(y != y_perturbed, axis=(0, 1))
  np.testing.assert_array_equal(changed, [False, False, True, True] + [False] * 4)
