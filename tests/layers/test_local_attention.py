import numpy as np
import pytest

from layers.local_attention import LocalAttention
from tests import numpy_reference as ref
from tests.layers.layer_testing import LayerUnderTest, random_input
from tests.mtf_testing import rng

LENGTH = 8


def local_attention_reference(x, v, window):
  """Attention whose mask keeps key j for query i when i - window < j ≤ i."""
  q, k, values = (np.einsum("bnd,dhk->bhnk", x, v[n]) for n in "qkv")
  logits = np.einsum("bhik,bhjk->bhij", q, k) / np.sqrt(q.shape[-1])
  i, j = np.indices(logits.shape[-2:])
  logits = np.where((j <= i) & (i - j < window), logits, -np.inf)
  o = np.einsum("bhij,bhjk->bhik", ref.softmax(logits), values)
  return np.einsum("bhnk,hkd->bnd", o, v["o"])


@pytest.mark.parametrize("window", [1, 2, 4, LENGTH])  # blocked below LENGTH
def test_local_attention_matches_numpy_reference(window):
  layer = LayerUnderTest(LocalAttention(heads=2, window=window), length=LENGTH)
  x = random_input(length=LENGTH)
  for values in layer.values_at_init_then_random():
    np.testing.assert_allclose(layer.y(x), local_attention_reference(x, values, window),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("window", [2, 4])
def test_local_attention_output_ignores_positions_before_the_window(window):
  layer = LayerUnderTest(LocalAttention(heads=2, window=window), length=LENGTH)
  layer.randomize()
  x = random_input(length=LENGTH)
  y = layer.y(x)
  for i in (2, 5):
    perturbed = x.copy()
    perturbed[:, :i] += 10.0 * rng(i).randn(*perturbed[:, :i].shape)
    y_perturbed = layer.y(perturbed)
    # Outputs at positions ≥ i + window - 1 see only positions ≥ i.
    np.testing.assert_array_equal(y[:, i + window - 1:], y_perturbed[:, i + window - 1:])
    assert not np.allclose(y[:, i:i + window - 1], y_perturbed[:, i:i + window - 1])


def test_window_must_divide_the_length():
  with pytest.raises(ValueError, match="window=3"):
    LayerUnderTest(LocalAttention(heads=2, window=3), length=LENGTH)
