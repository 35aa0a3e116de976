"""The dense feed-forward against numpy for every activation, with and without GLU."""
import math

import numpy as np
import pytest

from layers.feed_forward import FeedForward
from tests import numpy_reference as ref
from tests.layers.layer_testing import LayerUnderTest, random_input

# Written from the papers: ReLU; GELU's tanh form (Hendrycks & Gimpel 2016, the form
# GPT-2 uses); SiLU / swish x·σ(x) (Elfwing et al. 2018; Ramachandran et al. 2017).
ACTIVATIONS = {"relu": lambda h: np.maximum(h, 0.0),
               "gelu": ref.gelu,
               "silu": lambda h: h / (1.0 + np.exp(-h))}


def feed_forward_reference(x, v, activation, glu):
  """act(x W_in) W_out, or with GLU (Shazeer 2020, "GLU variants improve transformer")
  (act(x W_in) ⊙ x W_gate) W_out."""
  h = ACTIVATIONS[activation](x @ v["in"])
  if glu:
    h = h * (x @ v["gate"])
  return h @ v["out"]


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("glu", [False, True], ids=["plain", "glu"])
def test_feed_forward_matches_numpy_reference(activation, glu):
  layer = LayerUnderTest(FeedForward(multiplier=3, activation=activation, glu=glu))
  assert layer.shapes()["in"].to_integer_list == [8, 24]
  assert ("gate" in layer.names) == glu
  x = random_input() * 2.0  # spans the activations' curved region and both signs
  for values in layer.values_at_init_then_random():
    np.testing.assert_allclose(layer.y(x), feed_forward_reference(x, values, activation,
                                                                  glu),
                               rtol=1e-4, atol=1e-6)


def test_gelu_reference_is_the_tanh_form_of_x_phi_x():
  """The numpy GELU itself, against x·Φ(x) with Φ from math.erf (their difference is
  below 1e-3 everywhere, Hendrycks & Gimpel 2016)."""
  x = np.linspace(-5, 5, 101)
  exact = x * 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
  np.testing.assert_allclose(ref.gelu(x), exact, atol=1e-3)
