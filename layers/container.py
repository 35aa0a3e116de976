"""CONTAINER: attention plus a learned static seq² map, mixed by two learned scalars."""
import math

import gin

from layers import variables
from layers.attention import output_projection, project_to_heads, split_heads
from layers.shared_map import apply_map, causal_map, causal_softmax
from mtf_compat import mtf


@gin.configurable
class Container:
  """CONTAINER (Gao et al. 2021), causal, per head:

    A = α · softmax_j(Q Kᵀ / √d_head + log M) + β · (W ⊙ M)
    y = Σ_heads (A V) W_o,   Q, K, V = x W_q, x W_k, x W_v  [d_model, heads, d_head]

  W [heads, length, memory_length] is a learned map (role SEQ_MAP); α and β are learned
  scalars per layer, 1 at init, with the ReZero scalars' role (mixing scalars).
  """

  def __init__(self, heads=4):
    self.heads = heads

  def __call__(self, x, context):
    d_model = x.shape.get_dim_by_name("d_model")
    heads, d_head = split_heads(d_model, self.heads, None)
    q, k, v = (project_to_heads(x, context, name, heads, d_head) for name in "qkv")
    logits = mtf.einsum([q, context.memory(k)], reduced_dims=[d_head])
    attention = causal_softmax(logits * (1.0 / math.sqrt(d_head.size)), context)
    w = variables.seq_map(context, "static_map",
                          [heads, context.length, context.memory_length])
    alpha = variables.scalar(context, "alpha", 1.0)
    beta = variables.scalar(context, "beta", 1.0)
    a = attention * alpha + causal_map(w, context) * beta
    return output_projection(apply_map(a, v, context), context, heads, d_head, d_model)
