"""The shared seq² map against numpy: one learned [length, memory_length] map per layer,
applied as a masked mixer or a masked softmax (the Synthesizer's random form, Tay et
al. 2021)."""
import numpy as np
import pytest

from layers import variables
from layers.shared_map import SharedMap
from tests import numpy_reference as ref
from tests.layers.layer_testing import LayerUnderTest, random_input


def shared_map_reference(x, w, form):
  """x [b, n, d], w [n, n]: y_i = Σ_j A[i, j] x_j."""
  mask = ref.causal_mask(x.shape[1])
  if form == "mixer":
    a = w * mask
  else:
    a = ref.softmax(np.where(mask > 0, w, -np.inf))
  return np.einsum("ij,bjd->bid", a, x)


@pytest.mark.parametrize("form", ["mixer", "softmax"])
def test_shared_map_matches_numpy_reference(form):
  layer = LayerUnderTest(SharedMap(form))
  x = random_input()
  for values in layer.values_at_init_then_random():
    np.testing.assert_allclose(layer.y(x), shared_map_reference(x, values["map"], form),
                               rtol=1e-5, atol=1e-6)


def test_shared_map_has_length_squared_parameters_and_no_batch_or_heads_axis():
  layer = LayerUnderTest(SharedMap(), batch=3, length=7, d_model=8)
  (name, shape), = layer.shapes().items()
  assert shape.dimension_names == ["length", "memory_length"]
  assert shape.to_integer_list == [7, 7]
  assert shape.size == 7 * 7
  assert layer.records()[name] == variables.VariableRecord(variables.SEQ_MAP,
                                                           ("memory_length",))
