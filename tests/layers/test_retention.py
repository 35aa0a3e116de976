import numpy as np
import pytest

from layers.retention import Retention
from tests import numpy_reference as ref
from tests.layers.layer_testing import LayerUnderTest, random_input


def retention_reference(x, v, heads, eps=1e-6):
  """The recurrent form: S_i = γ_h S_{i-1} + k_i v_iᵀ, o_i = q_i S_i, γ_h = 1 - 2^(-5-h);
  y = (swish(g) ⊙ o / rms_head(o)) W_o."""
  def rotated(w):  # rotary over positions: n next to k
    return ref.rotary(np.einsum("bnd,dhk->bhnk", x, w)).transpose(0, 2, 1, 3)
  q = rotated(v["q"])
  k = rotated(v["k"]) / np.sqrt(q.shape[-1])
  values = np.einsum("bnd,dhk->bnhk", x, v["v"])
  g = np.einsum("bnd,dhk->bnhk", x, v["g"])
  gamma = 1.0 - 2.0 ** (-5.0 - np.arange(heads))
  state = np.zeros(q.shape[:1] + q.shape[2:] + values.shape[-1:])
  o = np.zeros_like(values)
  for i in range(x.shape[1]):
    state = gamma[None, :, None, None] * state + np.einsum("bhk,bhv->bhkv", k[:, i],
                                                           values[:, i])
    o[:, i] = np.einsum("bhk,bhkv->bhv", q[:, i], state)
  o = o / np.sqrt((o ** 2).mean(-1, keepdims=True) + eps)
  swish = g / (1.0 + np.exp(-g))
  return np.einsum("bnhk,hkd->bnd", swish * o, v["o"])


@pytest.mark.parametrize("chunk_size", [None, 2, 4])
def test_retention_matches_the_recurrent_numpy_reference_in_parallel_and_chunkwise_form(
    chunk_size):
  layer = LayerUnderTest(Retention(heads=2, chunk_size=chunk_size), length=8, d_model=8)
  x = random_input(length=8, d_model=8)
  for values in layer.values_at_init_then_random():
    np.testing.assert_allclose(layer.y(x), retention_reference(x, values, heads=2),
                               rtol=1e-4, atol=1e-5)


def test_chunkwise_retention_equals_the_parallel_form_over_eight_heads():
  """8 heads, γ from 1 - 2^-5 to 1 - 2^-12, over 16 positions in chunks of 4."""
  x = random_input(length=16, d_model=32)
  ys = []
  for chunk_size in (None, 4):
    layer = LayerUnderTest(Retention(heads=8, chunk_size=chunk_size), length=16,
                           d_model=32)
    layer.randomize()
    ys.append(layer.y(x))
  np.testing.assert_allclose(ys[1], ys[0], rtol=1e-4, atol=1e-5)
