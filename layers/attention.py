"""Causal multi-head attention."""
import math

import gin

from layers import variables
from mtf_compat import mtf


def split_heads(d_model, heads, d_head):
  """The `heads` and `d_head` dimensions; d_head defaults to d_model / heads."""
  if d_head is None:
    if d_model.size % heads:
      raise ValueError("d_model=%d is not divisible by heads=%d" % (d_model.size, heads))
    d_head = d_model.size // heads
  return mtf.Dimension("heads", heads), mtf.Dimension("d_head", d_head)


@gin.configurable
class Attention:
  """y = Σ_heads softmax(Q Kᵀ / √d_head + log M) V · W_o, per head.

  Q = x W_q, K = x W_k, V = x W_v; M is the causal mask (key j ≤ query i).
  shared_kv: K = V (one projection), as in the thread's memory-light variants.
  """

  def __init__(self, heads=4, d_head=None, shared_kv=False):
    self.heads = heads
    self.d_head = d_head
    self.shared_kv = shared_kv

  def __call__(self, x, context):
    d_model = x.shape.get_dim_by_name("d_model")
    heads, d_head = split_heads(d_model, self.heads, self.d_head)
    q, k, v = self.project_qkv(x, context, d_model, heads, d_head)
    k = context.memory(k)
    v = k if self.shared_kv else context.memory(v)
    logits = mtf.einsum([q, k], reduced_dims=[d_head]) * (1.0 / math.sqrt(d_head.size))
    weights = mtf.softmax(logits + context.causal_bias(), context.memory_length)
    o = mtf.einsum([weights, v], reduced_dims=[context.memory_length])
    return output_projection(o, context, heads, d_head, d_model)

  def project_qkv(self, x, context, d_model, heads, d_head):
    def project(name):
      w = variables.weight(context, name, [d_model, heads, d_head], ["d_model"])
      return mtf.einsum([x, w], reduced_dims=[d_model])
    q = project("q")
    k = project("k")
    v = k if self.shared_kv else project("v")
    return q, k, v


def output_projection(o, context, heads, d_head, d_model):
  """[.., heads, d_head] -> [.., d_model]: the block's output projection."""
  w = variables.weight(context, "o", [heads, d_head, d_model], ["heads", "d_head"],
                       output_projection=True)
  return mtf.einsum([o, w], reduced_dims=[heads, d_head])
