"""LayerNorm against numpy, with and without its bias."""
import numpy as np
import pytest

from layers.norm import LayerNorm
from tests import numpy_reference as ref
from tests.layers.layer_testing import LayerUnderTest, random_input


@pytest.mark.parametrize("center", [True, False], ids=["center", "no_center"])
def test_layer_norm_matches_numpy_reference(center):
  """(x − mean) / √(var + ε) · g (+ b) over d_model (Ba et al. 2016); center=False
  drops the bias b (only the gain g is learned)."""
  layer = LayerUnderTest(LayerNorm(center=center))
  assert sorted(layer.names) == (["bias", "scale"] if center else ["scale"])
  x = random_input() * 3.0 + 1.5  # a mean and scale the norm must remove
  for values in layer.values_at_init_then_random():
    bias = values["bias"] if center else 0.0
    np.testing.assert_allclose(layer.y(x), ref.layer_norm(x, values["scale"], bias),
                               rtol=1e-4, atol=1e-5)
