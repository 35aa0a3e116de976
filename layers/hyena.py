"""The Hyena operator of order 2."""
import math

import gin
import numpy as np

from layers import variables
from layers.short_conv import short_conv
from mtf_compat import mtf, tf

SHORT_TAPS = 3
# The decay window of the reference (HazyResearch safari, ExponentialModulation): each
# channel's filter falls to TARGET between 30% and 150% of the length.
FAST_DECAY, SLOW_DECAY, TARGET = 0.3, 1.5, 1e-2


def fft_causal_conv(v, h, context):
  """y_t = Σ_{s≤t} h_s v_{t-s} along `length`, by FFTs of length 2·length (so nothing
  wraps around): v [.., length, d_ff], h [length, d_ff]. Causal up to rounding: the
  FFT mixes every position, so earlier outputs move by ~1e-7 of the output's scale
  when later inputs change.

  The gradients are FFT correlations, corr(a, b)_k = Σ_t a_t b_{t-k}: dv = corr(dy, h),
  dh = Σ_batch corr(dy, v) (summed by mtf, which all-reduces a split batch).
  """
  length = context.length
  if context.is_split(length):
    raise ValueError("Hyena: its FFT convolution needs `length` whole on every device, "
                     "but the layout splits it over the mesh")
  h = mtf.transpose(h, [d for d in v.shape.dims if d in h.shape.dims])  # v's order
  others_v = [d for d in v.shape.dims if d != length]
  others_h = [d for d in h.shape.dims if d != length]
  assert others_v[len(others_v) - len(others_h):] == others_h, (v.shape, h.shape)
  n = length.size

  def along_length(conjugate, name):
    """a, b -> irfft(rfft(a) · rfft(b) (or its conjugate))[:n], slice by slice, with
    `length` moved last for the FFT (a has v's shape; b has v's or h's)."""

    def fn(a, b):
      def to_last(x):
        axis = (v if x.shape.ndims == v.shape.ndims else h).shape.dims.index(length)
        order = [i for i in range(x.shape.ndims) if i != axis] + [axis]
        return tf.transpose(tf.cast(x, tf.float32), order), order
      a_last, order = to_last(a)
      b_last, _ = to_last(b)
      fb = tf.signal.rfft(b_last, fft_length=[2 * n])
      if conjugate:
        fb = tf.math.conj(fb)
      y = tf.signal.irfft(tf.signal.rfft(a_last, fft_length=[2 * n]) * fb,
                          fft_length=[2 * n])[..., :n]
      return tf.cast(tf.transpose(y, np.argsort(order)), a.dtype)

    def apply(a, b, grad_function=None):
      return mtf.slicewise(fn, [a, b], output_shape=v.shape,
                           splittable_dims=[d for d in v.shape.dims if d != length],
                           grad_function=grad_function, name=name)
    return apply

  def grad(op, dy):
    v_in, h_in = op.inputs
    dv = along_length(True, "fft_conv_grad_v")(dy, h_in)
    dh = mtf.reduce_sum(along_length(True, "fft_conv_grad_h")(dy, v_in),
                        output_shape=h_in.shape)
    return [dv, dh]

  return along_length(False, "fft_causal_conv")(v, h, grad)


def sin(x):
  """mtf.sin with its gradient dy · cos(x) (mtf's sin has none for a split batch)."""
  return mtf.cwise(tf.sin, [x], name="sin",
                   grad_function=lambda op, dy: [dy * mtf.cos(op.inputs[0])])


@gin.configurable
class Hyena:
  """The Hyena operator (Poli et al. 2023) of order 2, causal:

    (v, x1, x2) = short_conv(x W_v), short_conv(x W_1), short_conv(x W_2)
    z1 = x1 ⊙ (h1 * v + b1 ⊙ v),   z2 = x2 ⊙ (h2 * z1 + b2 ⊙ z1),   y = z2 W_o

  short_conv: a depthwise causal convolution over the last 3 positions
  (layers/short_conv.py). h_n: implicit long filters, h_n(t) = FFN_n(features(t)) ·
  exp(-α_c t / length), an FFN (two layers of `filter_width` sin units) over
  [cos(ω_k t), sin(ω_k t)] (ω_k = 2πk / length, k < bands), with a per-channel decay
  window α_c spread from fast to slow as in the reference; b_n a per-channel skip term.
  `*` is the causal convolution along length, an FFT of length 2·length over whole
  windows (the layout must not split `length`); when decoding, the filter is evaluated
  at the distances to the memory's positions, Σ_j h(p - j) v_j.
  """

  def __init__(self, filter_width=32, bands=8):
    self.filter_width = filter_width
    self.bands = bands

  def __call__(self, x, context):
    d_model = x.shape.get_dim_by_name("d_model")
    d_ff = mtf.Dimension("d_ff", d_model.size)
    streams = []
    for name in ("v", "x1", "x2"):
      w = variables.weight(context, "in_" + name, [d_model, d_ff], ["d_model"])
      with tf.variable_scope("short_" + name):
        streams.append(short_conv(mtf.einsum([x, w], reduced_dims=[d_model]),
                                  SHORT_TAPS, context))
    z, x1, x2 = streams
    for n, gate in ((1, x1), (2, x2)):
      with tf.variable_scope("filter_%d" % n):
        z = gate * self.long_conv(z, context)
    w_out = variables.weight(context, "out", [d_ff, d_model], ["d_ff"],
                             output_projection=True)
    return mtf.einsum([z, w_out], reduced_dims=[d_ff])

  def long_conv(self, z, context):
    """h * z + b ⊙ z."""
    d_ff = z.shape.get_dim_by_name("d_ff")
    skip = variables.variable(context, "skip", [d_ff], tf.zeros_initializer(),
                              variables.BIAS)
    if context.decoding:
      memory = context.memory(z)
      h = self.filter(context.distance(), d_ff, context)
      conv = mtf.einsum([h, memory], output_shape=z.shape)
    else:
      if context.prefilling:
        context.memory(z)
      h = self.filter(mtf.range(z.mesh, context.length, tf.int32), d_ff, context)
      conv = fft_causal_conv(z, h, context)
    return conv + skip * z

  def filter(self, t, d_ff, context):
    """h(t) [t's dims, d_ff] for int32 distances t (0 where t < 0)."""
    length = context.length.size
    width = mtf.Dimension("filter_width", self.filter_width)
    bands = mtf.Dimension("filter_bands", self.bands)
    t_float = mtf.cast(t, tf.float32)
    angle = t_float * (mtf.range(t.mesh, bands, tf.float32) * (2.0 * math.pi / length))

    def weight(name, shape, stddev):
      return variables.variable(context, name, shape,
                                tf.random_normal_initializer(stddev=stddev),
                                variables.WEIGHT, (shape[0].name,))

    dtype = context.activation_dtype
    hidden = sum(mtf.einsum([mtf.cast(f(angle), dtype),
                             weight(name, [bands, width], 1.0)], reduced_dims=[bands])
                 for name, f in (("w_cos", mtf.cos), ("w_sin", mtf.sin)))
    hidden = sin(hidden)
    width_2 = mtf.Dimension("filter_width_2", self.filter_width)
    stddev = 1.0 / math.sqrt(self.filter_width)
    hidden = sin(mtf.einsum([hidden, weight("w_hidden", [width, width_2], stddev)],
                            reduced_dims=[width]))
    w_out = weight("w_out", [width_2, d_ff], stddev)
    h = mtf.einsum([hidden, w_out], reduced_dims=[width_2])
    # α_c from -log(TARGET)/FAST_DECAY (fast) to -log(TARGET)/SLOW_DECAY (slow).
    fast, slow = -math.log(TARGET) / FAST_DECAY, -math.log(TARGET) / SLOW_DECAY
    c = mtf.range(t.mesh, d_ff, tf.float32) * (1.0 / max(d_ff.size - 1, 1))
    alpha = fast + (slow - fast) * c
    window = mtf.exp(-alpha * mtf.relu(t_float) * (1.0 / length))
    visible = mtf.cast(mtf.greater_equal(t, 0), tf.float32)
    return h * mtf.cast(window * visible, dtype)
