"""Causal multi-head attention."""
import math

import gin

from layers import variables
from layers.rotary import rotate
from layers.shared_map import causal_softmax
from mtf_compat import mtf, tf

POSITION_ENCODINGS = ("none", "rotary", "alibi")


def split_heads(d_model, heads, d_head):
  """The `heads` and `d_head` dimensions; d_head defaults to d_model / heads."""
  if d_head is None:
    if d_model.size % heads:
      raise ValueError("d_model=%d is not divisible by heads=%d" % (d_model.size, heads))
    d_head = d_model.size // heads
  return mtf.Dimension("heads", heads), mtf.Dimension("d_head", d_head)


def project_to_heads(x, context, name, heads, d_head):
  """x W with W [d_model, heads, d_head] (a new weight called `name`).

  The result is [.., heads, length, d_head]: with heads ahead of length, Q Kᵀ and A V
  lower to plain batched matmuls; with heads after length, TF's einsum transposes
  around them and they run 2.5-6x slower on CPU.
  """
  d_model = x.shape.get_dim_by_name("d_model")
  w = variables.weight(context, name, [d_model, heads, d_head], ["d_model"])
  dims = [d for d in x.shape.dims if d != d_model]
  at = dims.index(context.length) if context.length in dims else len(dims)
  return mtf.einsum([x, w], output_shape=dims[:at] + [heads] + dims[at:] + [d_head])


@gin.configurable
class Attention:
  """y = Σ_heads softmax(Q Kᵀ / √d_head + log M) V · W_o, per head.

  Q = x W_q, K = x W_k, V = x W_v; M is the causal mask (key j ≤ query i).
  shared_kv: K = V (one projection), as in the thread's memory-light variants.
  position_encoding: 'none'; 'rotary' (RoPE, Su et al. 2021): Q and K rotated by their
  positions (layers/rotary.py), so Q Kᵀ depends on i - j only; 'alibi' (Press et al.
  2022): the logits of head h = 1..H get -m_h (i - j), m_h = 2^(-8h/H).
  """

  def __init__(self, heads=4, d_head=None, shared_kv=False, position_encoding="none"):
    if position_encoding not in POSITION_ENCODINGS:
      raise ValueError("Attention.position_encoding must be one of %s, got %r"
                       % (POSITION_ENCODINGS, position_encoding))
    if shared_kv and position_encoding == "rotary":
      raise ValueError("Attention: rotary keys cannot be the values (shared_kv)")
    self.heads = heads
    self.d_head = d_head
    self.shared_kv = shared_kv
    self.position_encoding = position_encoding

  def __call__(self, x, context):
    d_model = x.shape.get_dim_by_name("d_model")
    heads, d_head = split_heads(d_model, self.heads, self.d_head)
    q, k, v = self.project_qkv(x, context, heads, d_head)
    if self.position_encoding == "rotary":
      q, k = rotate(q, context), rotate(k, context)
    k = context.memory(k)
    v = k if self.shared_kv else context.memory(v)
    logits = mtf.einsum([q, k], reduced_dims=[d_head]) * (1.0 / math.sqrt(d_head.size))
    if self.position_encoding == "alibi":
      logits += alibi_bias(heads, context, logits.dtype)
    weights = causal_softmax(logits, context)
    o = mtf.einsum([weights, v], reduced_dims=[context.memory_length])
    return output_projection(o, context, heads, d_head, d_model)

  def project_qkv(self, x, context, heads, d_head):
    q = project_to_heads(x, context, "q", heads, d_head)
    k = project_to_heads(x, context, "k", heads, d_head)
    v = k if self.shared_kv else project_to_heads(x, context, "v", heads, d_head)
    return q, k, v


def output_projection(o, context, heads, d_head, d_model):
  """[.., heads, d_head] -> [.., d_model]: the block's output projection."""
  w = variables.weight(context, "o", [heads, d_head, d_model], ["heads", "d_head"],
                       output_projection=True)
  return mtf.einsum([o, w], reduced_dims=[heads, d_head])


def alibi_bias(heads, context, dtype):
  """-m_h (i - j) [heads, length, memory_length], m_h = 2^(-8h/H) for h = 1..H (the
  masked entries, j > i, get a positive bias that the causal mask overrides)."""
  h = mtf.range(context.mesh, heads, tf.float32) + 1.0
  slopes = mtf.exp(h * (-8.0 * math.log(2.0) / heads.size))
  return mtf.cast(slopes * -mtf.cast(context.distance(), tf.float32), dtype)
