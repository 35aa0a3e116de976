"""Causal linear attention."""
import gin

from layers import linear_recurrence
from layers.attention import output_projection, project_to_heads, split_heads
from mtf_compat import mtf

EPSILON = 1e-6


def feature_map(x):
  """φ(x) = elu(x) + 1 > 0."""
  return mtf.elu(x) + 1.0


@gin.configurable
class LinearAttention:
  """Causal linear attention (Katharopoulos et al. 2020), per head:

    y_i = φ(q_i)ᵀ Σ_{j≤i} φ(k_j) v_jᵀ / (φ(q_i) · Σ_{j≤i} φ(k_j) + ε),  φ = elu + 1

  then the output projection (q, k, v, o as in Attention, no 1/√d_head: the normaliser
  takes its place). Numerator and normaliser are one causal sum over [v_j, 1], so the
  state is S = Σ_j φ(k_j) [v_j, 1]ᵀ [heads, d_head, d_head + 1]: the [d_head, d_head]
  sum and, as its last column, the normaliser Σ_j φ(k_j).

  Training uses the chunkwise form (chunks of `chunk_size` positions): memory
  length · chunk_size + (length / chunk_size) · d_head² per head instead of the masked
  quadratic form's length², and the same result. Decoding updates S by one position per
  byte, so a byte's cost does not grow with its position.
  """

  recurrent = True  # its decoding state has no length axis

  def __init__(self, heads=4, chunk_size=64):
    self.heads = heads
    self.chunk_size = chunk_size

  def __call__(self, x, context):
    d_model = x.shape.get_dim_by_name("d_model")
    heads, d_head = split_heads(d_model, self.heads, None)
    q = feature_map(project_to_heads(x, context, "q", heads, d_head))
    k = feature_map(project_to_heads(x, context, "k", heads, d_head))
    v = project_to_heads(x, context, "v", heads, d_head)
    # [v, 1] over a d_value axis: the state holds both the key and the value channels.
    d_value = mtf.Dimension("d_value", d_head.size)
    v = mtf.replace_dimensions(v, d_head, d_value)
    ones = mtf.ones(x.mesh, v.shape.resize_dimension("d_value", 1), v.dtype)
    v = mtf.concat([v, ones], "d_value")
    o = linear_recurrence.mix(q, k, v, None, context, self.chunk_size)
    numerator = mtf.slice(o, 0, d_value.size, "d_value")
    normaliser = mtf.reduce_sum(mtf.slice(o, d_value.size, 1, "d_value"),
                                reduced_dim=mtf.Dimension("d_value", 1))
    y = mtf.replace_dimensions(numerator / (normaliser + EPSILON), d_value, d_head)
    return output_projection(y, context, heads, d_head, d_model)
