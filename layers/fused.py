"""GELU, softmax and layer normalisation as single mtf operations, forward and backward.

Composed from mtf's elementwise operations, a GELU is eight passes over memory forward
and more backward, and a softmax computes its exponentials twice: on CPU these passes
cost as much time as the matmuls of a small model. Here each function lowers to one TF
subgraph per slice, with its gradient written out by hand the same way:

- GELU runs under an XLA jit scope, which compiles it into one kernel (1.0 ms instead
  of 5.2 ms forward and backward on [32, 128, 432]). Only these subgraphs: XLA's
  matmuls are slower than oneDNN's, and global auto-clustering halves the step's speed.
  Inside a computation XLA compiles anyway (TPU) the scope is left off, and so it is
  when predicting: a sampling step works on one position, where launching an XLA
  kernel costs more than the passes it saves (sampling ran at half the bytes/s).
- Softmax and normalisation use TF's own kernels: XLA's CPU reductions were slower
  than them (5.1 ms against 2.4 ms for a normalisation over 432 channels). They reduce
  along one dimension; when the layout splits it they fall back to mtf's operations,
  which communicate across the mesh.
"""
import math

from layers.context import PREDICT
from mtf_compat import mtf, tf
from tensorflow.python.ops import control_flow_util  # pylint: disable=g-direct-tensorflow-import

GELU_C, GELU_A = math.sqrt(2.0 / math.pi), 0.044715


def compiled(tf_fn, context):
  """tf_fn, with the TF ops it creates compiled by XLA as one cluster (see above)."""

  def fn(*xs):
    if (context.mode == PREDICT or
        control_flow_util.GraphOrParentsInXlaContext(tf.get_default_graph())):
      return tf_fn(*xs)
    with tf.xla.experimental.jit_scope():
      return tf_fn(*xs)

  return fn


def tf_gelu(x):
  """½x(1 + t), t = tanh(c(x + a·x³))."""
  return 0.5 * x * (1.0 + tf.tanh(GELU_C * (x + GELU_A * x * x * x)))


def tf_gelu_grad(x, dy):
  """dy · (½(1 + t) + ½x(1 - t²) · c(1 + 3a·x²))."""
  t = tf.tanh(GELU_C * (x + GELU_A * x * x * x))
  return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C
               * (1.0 + 3.0 * GELU_A * x * x))


def gelu(x, context):
  """x · Φ(x) with the tanh approximation of Φ, as mtf.gelu."""

  def grad(op, dy):
    return [mtf.cwise(compiled(tf_gelu_grad, context), [op.inputs[0], dy],
                      name="gelu_grad")]

  return mtf.cwise(compiled(tf_gelu, context), [x], grad_function=grad, name="gelu")


def reduce_along(x, dim, forward, backward, name):
  """y = forward(x, axis) slice by slice, with dx = backward(x, y, dy, axis): functions
  that reduce along dim (which may not be split, then) and keep the shape."""
  axis = x.shape.dims.index(dim)
  splittable = [d for d in x.shape.dims if d != dim]

  def lowered(tf_fn):
    return lambda *xs: tf_fn(*xs, axis=axis)

  def grad(op, dy):
    return [mtf.slicewise(lowered(backward), [op.inputs[0], op.outputs[0], dy],
                          output_shape=x.shape, splittable_dims=splittable,
                          name=name + "_grad")]

  return mtf.slicewise(lowered(forward), [x], output_shape=x.shape,
                       splittable_dims=splittable, grad_function=grad, name=name)


def softmax(logits, dim, context):
  """exp(logits) / Σ_dim exp(logits)."""
  if context.is_split(dim):
    return mtf.softmax(logits, dim)

  def tf_softmax_grad(unused_logits, y, dy, axis):
    return y * (dy - tf.reduce_sum(dy * y, axis, keepdims=True))

  return reduce_along(logits, dim, tf.nn.softmax, tf_softmax_grad, "softmax")


def normalize(x, dim, epsilon, context):
  """(x - mean) / sqrt(var + ε) over dim."""
  if context.is_split(dim):
    centered = x - mtf.reduce_mean(x, reduced_dim=dim)
    variance = mtf.reduce_mean(mtf.square(centered), reduced_dim=dim)
    return centered * mtf.rsqrt(variance + epsilon)

  def inverse_std(centered, axis):
    return tf.math.rsqrt(tf.reduce_mean(tf.square(centered), axis, keepdims=True)
                         + epsilon)

  def tf_normalize(x, axis):
    centered = x - tf.reduce_mean(x, axis, keepdims=True)
    return centered * inverse_std(centered, axis)

  def tf_normalize_grad(x, y, dy, axis):
    def mean(t):
      return tf.reduce_mean(t, axis, keepdims=True)
    return inverse_std(x - mean(x), axis) * (dy - mean(dy) - y * mean(dy * y))

  return reduce_along(x, dim, tf_normalize, tf_normalize_grad, "normalize")
