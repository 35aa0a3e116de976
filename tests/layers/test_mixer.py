"""Causal MLP-Mixer token mixing against numpy (Tolstikhin et al. 2021, "MLP-Mixer"),
per head, with both maps masked causally."""
import numpy as np
import pytest

from layers import variables
from layers.mixer import MLPMixer
from tests import numpy_reference as ref
from tests.layers.layer_testing import LayerUnderTest, random_input
from tests.mtf_testing import rng


def mixer_reference(x, v, heads):
  """Per head h: H = gelu((W1[h] ⊙ M) · LayerNorm(x[h])), y[h] = (W2[h] ⊙ M) · H."""
  b, n, d = x.shape
  mask = ref.causal_mask(n)
  h = x.reshape(b, n, heads, d // heads)
  h = ref.layer_norm(h, v["head_norm/scale"], v["head_norm/bias"])
  w1, w2 = (v[name].reshape(heads, n, n) * mask for name in ("w1", "w2"))
  h = ref.gelu(np.einsum("hij,bjhk->bihk", w1, h))
  y = np.einsum("hij,bjhk->bihk", w2, h)
  return y.reshape(b, n, d)


@pytest.mark.parametrize("heads", [1, 2])
def test_mixer_matches_numpy_reference(heads):
  layer = LayerUnderTest(MLPMixer(heads=heads))
  x = random_input()
  for values in layer.values_at_init_then_random():
    np.testing.assert_allclose(layer.y(x), mixer_reference(x, values, heads),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("heads,names,sizes", [
    (4, ["heads", "length", "memory_length"], [4, 5, 5]),
    (1, ["length", "memory_length"], [5, 5]),  # the shared map's shape
])
def test_mixer_maps_are_per_head_seq_maps(heads, names, sizes):
  layer = LayerUnderTest(MLPMixer(heads=heads), length=5)
  for name in ("w1", "w2"):
    assert layer.shapes()[name].dimension_names == names
    assert layer.shapes()[name].to_integer_list == sizes
    assert layer.records()[name].role == variables.SEQ_MAP


def test_mixer_heads_do_not_mix():
  layer = LayerUnderTest(MLPMixer(heads=2))
  layer.randomize()
  x = random_input()
  perturbed = x.copy()
  perturbed[..., :4] += rng(1).randn(*x.shape[:2], 4)  # head 0's channels
  y, y_perturbed = layer.y(x), layer.y(perturbed)
  np.testing.assert_array_equal(y[..., 4:], y_perturbed[..., 4:])
  assert not np.allclose(y[..., :4], y_perturbed[..., :4])
