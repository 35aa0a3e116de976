import numpy as np
import pytest

from layers.linear_attention import LinearAttention
from tests.layers.layer_testing import LayerUnderTest, random_input


def elu_plus_one(x):
  return np.where(x > 0, x + 1.0, np.exp(x))


def linear_attention_reference(x, v, eps=1e-6):
  """Position by position: y_i = φ(q_i) S_i / (φ(q_i) · z_i + ε), S_i = Σ_{j≤i} φ(k_j) v_jᵀ,
  z_i = Σ_{j≤i} φ(k_j)."""
  q = elu_plus_one(np.einsum("bnd,dhk->bnhk", x, v["q"]))
  k = elu_plus_one(np.einsum("bnd,dhk->bnhk", x, v["k"]))
  values = np.einsum("bnd,dhk->bnhk", x, v["v"])
  out = np.zeros_like(values)
  for i in range(x.shape[1]):
    s = np.einsum("bjhk,bjhv->bhkv", k[:, :i + 1], values[:, :i + 1])
    z = k[:, :i + 1].sum(1)
    out[:, i] = (np.einsum("bhk,bhkv->bhv", q[:, i], s)
                 / (np.einsum("bhk,bhk->bh", q[:, i], z)[..., None] + eps))
  return np.einsum("bnhk,hkd->bnd", out, v["o"])


@pytest.mark.parametrize("chunk_size", [None, 2, 4])
def test_linear_attention_matches_numpy_reference_in_parallel_and_chunkwise_form(
    chunk_size):
  layer = LayerUnderTest(LinearAttention(heads=2, chunk_size=chunk_size), length=8)
  x = random_input(length=8)
  for values in layer.values_at_init_then_random():
    np.testing.assert_allclose(layer.y(x), linear_attention_reference(x, values),
                               rtol=1e-4, atol=1e-6)


def test_chunk_size_must_divide_the_length():
  with pytest.raises(ValueError, match="chunk_size=3"):
    LayerUnderTest(LinearAttention(heads=2, chunk_size=3), length=8)
