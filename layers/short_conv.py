"""A short causal depthwise convolution along `length`, alone or before a token mixer."""
from layers import variables
from layers.context import pick
from mtf_compat import mtf, tf


def short_conv(x, taps, context):
  """y_t = Σ_{s<taps} w_s ⊙ x_{t-s} per channel (zeros before position 0), with the
  learned taps w [taps, channels] made here as the variable `taps`; x's last dimension
  is the channels. taps >= 2.

  Decoding carries the last taps − 1 inputs rather than a memory over positions: the
  state does not grow with the position, so a recurrent model stays recurrent.
  """
  channels = x.shape.dims[-1]
  taps_dim = mtf.Dimension("taps", taps)
  w = variables.variable(context, "taps", [taps_dim, channels],
                         tf.random_normal_initializer(stddev=1.0 / taps),
                         variables.WEIGHT, ("taps",))
  # The carried inputs: x_{t-1-s} at index s of `past`.
  past = mtf.Dimension("short_conv_past", taps - 1)
  if context.decoding:
    before = context.carried()
    newest = mtf.cast(mtf.equal(mtf.range(x.mesh, past, tf.int32), 0), x.dtype)
    context.carry(mtf.shift(before, 1, past, wrap=False)
                  + mtf.einsum([x, newest], output_shape=before.shape))
    return pick(w, taps_dim, 0) * x + sum(
        pick(w, taps_dim, s + 1) * pick(before, past, s) for s in range(taps - 1))
  if context.prefilling:  # the inputs just before the first decoding step
    mesh, length = x.mesh, context.length
    at = mtf.equal(mtf.range(mesh, length, tf.int32),
                   (context.first_step - 1) - mtf.range(mesh, past, tf.int32))
    context.carry(mtf.einsum([x, mtf.cast(at, x.dtype)],
                             output_shape=mtf.replace_dimensions(x.shape, length, past)))
  return sum(pick(w, taps_dim, s) * mtf.shift(x, s, context.length, wrap=False)
             for s in range(taps))


class ShortConvThen:
  """A token mixer that reads its input through a short causal convolution first:
  mixer(short_conv(x)). Each position then sees the bytes just before it, which a
  mixer would otherwise have to learn to look back for (Zoology's MQAR models pair
  every mixer with such a convolution, Arora et al. 2023)."""

  def __init__(self, mixer, taps):
    self.mixer = mixer
    self.taps = taps

  def __call__(self, x, context):
    with tf.variable_scope("short_conv"):
      x = short_conv(x, self.taps, context)
    return self.mixer(x, context)
