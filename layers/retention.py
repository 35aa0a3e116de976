"""Multi-scale retention (RetNet)."""
import math

import gin

from layers import linear_recurrence
from layers.attention import output_projection, project_to_heads, split_heads
from layers.rotary import rotate
from mtf_compat import mtf, tf

EPSILON = 1e-6


def log_decays(heads, mesh):
  """log γ_h with γ_h = 1 - 2^(-5-h), h = 0 .. heads - 1: float32 [heads]."""
  h = mtf.range(mesh, heads, tf.float32)
  return mtf.log(1.0 - mtf.exp((h + 5.0) * -math.log(2.0)))


def rms_norm(x, dim):
  """x / √(mean_dim x² + ε), no learned scale (RetNet's group norm, one group a head)."""
  return x * mtf.rsqrt(mtf.reduce_mean(mtf.square(x), reduced_dim=dim) + EPSILON)


@gin.configurable
class Retention:
  """Multi-scale retention (Sun et al. 2023), per head h = 0 .. heads - 1:

    q = R(x W_q),  k = R(x W_k) / √d_head,  v = x W_v,  g = x W_g
    o_i = Σ_{j≤i} γ_h^(i-j) (q_i · k_j) v_j,   γ_h = 1 - 2^(-5-h)
    y = (swish(g) ⊙ RMSNorm_head(o)) W_o

  R rotates by position (layers/rotary.py; the paper's e^{inθ}). Training runs the
  parallel form, or the chunkwise form when `chunk_size` is below the length (the same
  o); decoding runs the recurrent form S ← γ_h S + k vᵀ, o = q · S, a [heads, d_head,
  d_head] state. The reference (torchscale) also divides each row of o by positive
  scalars (√Σ_j γ^(i-j), and Σ_j |q_i · k_j| clamped to [1, 5e4]) to keep bf16 sums in
  range; the per-head RMSNorm removes any such scalar (up to its ε), so they are left
  out. Values have d_head channels (the paper uses 2 · d_head).
  """

  recurrent = True  # its decoding state has no length axis

  def __init__(self, heads=4, chunk_size=None):
    self.heads = heads
    self.chunk_size = chunk_size

  def __call__(self, x, context):
    d_model = x.shape.get_dim_by_name("d_model")
    heads, d_head = split_heads(d_model, self.heads, None)
    d_value = mtf.Dimension("d_value", d_head.size)
    q = rotate(project_to_heads(x, context, "q", heads, d_head), context)
    k = rotate(project_to_heads(x, context, "k", heads, d_head), context)
    k *= 1.0 / math.sqrt(d_head.size)
    v = project_to_heads(x, context, "v", heads, d_value)
    g = project_to_heads(x, context, "g", heads, d_value)
    log_gamma = log_decays(heads, x.mesh)
    o = linear_recurrence.mix(q, k, v, log_gamma, context, self.chunk_size)
    y = mtf.swish(g) * rms_norm(o, d_value)
    return output_projection(mtf.replace_dimensions(y, d_value, d_head), context, heads,
                             d_head, d_model)
