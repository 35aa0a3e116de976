"""The short causal convolution: numpy reference, split length, GPT.short_conv."""
import gin
import numpy as np
import pytest

from layers.short_conv import short_conv
from models.gpt import GPT
from mtf_compat import tf
from tests.layers.layer_testing import NAMES, LayerUnderTest, random_input
from tests.mtf_testing import MtfRunner

LENGTH = 8


def conv3(x, context):
  return short_conv(x, 3, context)


def test_short_conv_matches_numpy_convolution_per_channel():
  layer = LayerUnderTest(conv3, length=LENGTH)
  x = random_input(length=LENGTH)
  for values in layer.values_at_init_then_random():
    w = values["taps"]  # [taps, channels]
    expected = np.zeros_like(x)
    for b, c in np.ndindex(x.shape[0], x.shape[2]):
      expected[b, :, c] = np.convolve(x[b, :, c], w[:, c])[:LENGTH]
    np.testing.assert_allclose(layer.y(x), expected, rtol=1e-5, atol=1e-6)


def test_short_conv_over_a_split_length_equals_one_device():
  """The shift crosses the devices' boundary when `length` is split."""
  x = random_input(length=LENGTH)
  outputs = []
  for mesh_shape, layout in (("", ""), ("data:2", "length:data")):
    with tf.Graph().as_default():
      tf.set_random_seed(0)
      r = MtfRunner(mesh_shape, layout, batch=2, length=LENGTH, d_model=8)
      outputs.append(r.run(conv3(r.constant(x, NAMES), r.context)))
  np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-6)
  assert np.abs(outputs[0]).max() > 0


@pytest.mark.parametrize("taps", [1, -2, 2.5])
def test_gpt_short_conv_must_be_0_or_at_least_2_taps(taps):
  gin.clear_config()
  with pytest.raises(ValueError, match="GPT.short_conv must be 0"):
    GPT(short_conv=taps)
