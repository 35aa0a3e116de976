import math

import numpy as np
import pytest

from layers.hyena import Hyena
from tests.layers.layer_testing import LayerUnderTest, random_input
from tests.mtf_testing import MtfRunner, rng

LENGTH = 8


def implicit_filter(v, prefix, n, channels):
  """h(t) [n, channels], t = 0..n-1: two sin layers over [cos(ω_k t), sin(ω_k t)],
  ω_k = 2πk/n, then the decay window exp(-α_c t / n), α_c from -ln(0.01)/0.3 down to
  -ln(0.01)/1.5 over the channels."""
  t = np.arange(n)[:, None]
  angle = t * 2 * math.pi * np.arange(v[prefix + "w_cos"].shape[0])[None] / n
  hidden = np.sin(np.cos(angle) @ v[prefix + "w_cos"] + np.sin(angle) @ v[prefix + "w_sin"])
  hidden = np.sin(hidden @ v[prefix + "w_hidden"])
  h = hidden @ v[prefix + "w_out"]
  fast, slow = -math.log(0.01) / 0.3, -math.log(0.01) / 1.5
  alpha = fast + (slow - fast) * np.arange(channels) / (channels - 1)
  return h * np.exp(-alpha[None] * t / n)


def hyena_reference(x, v):
  """Order 2, with the convolutions as direct sums over past positions."""
  b, n, d = x.shape

  def short_conv(z, w):  # w [3, channels]
    return sum(w[s] * np.pad(z, [(0, 0), (s, 0), (0, 0)])[:, :n] for s in range(3))

  def long_conv(z, h, skip):
    out = np.zeros_like(z)
    for i in range(n):
      out[:, i] = sum(h[i - j] * z[:, j] for j in range(i + 1))
    return out + skip * z

  streams = [short_conv(x @ v["in_" + s], v["short_%s/taps" % s]) for s in ("v", "x1", "x2")]
  z = streams[0]
  for order, gate in ((1, streams[1]), (2, streams[2])):
    p = "filter_%d/" % order
    z = gate * long_conv(z, implicit_filter(v, p, n, d), v[p + "skip"])
  return z @ v["out"]


def test_hyena_matches_numpy_reference_with_direct_convolutions():
  layer = LayerUnderTest(Hyena(filter_width=8, bands=3), length=LENGTH)
  x = random_input(length=LENGTH)
  for values in layer.values_at_init_then_random():
    np.testing.assert_allclose(layer.y(x), hyena_reference(x, values),
                               rtol=1e-4, atol=1e-6)


def test_a_layout_that_splits_length_is_an_error_naming_it():
  from mtf_compat import mtf, tf  # pylint: disable=g-import-not-at-top
  with tf.Graph().as_default():
    r = MtfRunner("data:2", "length:data", batch=2, length=LENGTH, d_model=8)
    x = r.constant(random_input(length=LENGTH), ["batch", "length", "d_model"])
    with pytest.raises(ValueError, match="splits it over the mesh"):
      Hyena()(x, r.context)
    del mtf


def test_hyena_gradients_match_finite_differences_of_the_reference():
  """The FFT convolution's hand-written gradients (correlations), checked against
  central differences of the direct-convolution reference in float64."""
  layer = LayerUnderTest(Hyena(filter_width=8, bands=3), length=LENGTH)
  values = {k: v.astype(np.float64) for k, v in layer.randomize().items()}
  x = random_input(length=LENGTH).astype(np.float64)
  c = rng(1).randn(*x.shape)  # LayerUnderTest's fixed cotangent for seed 0
  gradients = layer.gradients(x.astype(np.float32))
  for name in ("in_v", "short_v/taps", "filter_1/w_out", "filter_1/skip",
               "filter_2/w_hidden", "filter_2/w_cos"):
    for index in list(np.ndindex(values[name].shape))[::7][:4]:
      def loss(delta):
        shifted = dict(values)
        shifted[name] = values[name].copy()
        shifted[name][index] += delta
        return np.sum(hyena_reference(x, shifted) * c)
      numeric = (loss(1e-5) - loss(-1e-5)) / 2e-5
      np.testing.assert_allclose(gradients[name][index], numeric, rtol=1e-3,
                                 atol=1e-5, err_msg="%s%s" % (name, index))
