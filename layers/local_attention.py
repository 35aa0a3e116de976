"""Causal sliding-window attention."""
import math

import gin

from layers import fused
from layers.attention import output_projection, project_to_heads, split_heads
from mtf_compat import mtf, tf


def window_bias(distance, window, dtype):
  """0 where 0 ≤ distance < window (the key is one of the query's last `window`
  positions), a large negative number elsewhere (added to logits)."""
  inside = mtf.logical_and(mtf.greater_equal(distance, 0), mtf.less(distance, window))
  return (1.0 - mtf.cast(inside, dtype)) * -1e9


@gin.configurable
class LocalAttention:
  """Attention over the last `window` positions, per head:

    y_i = Σ_heads softmax_j(q_i · k_j / √d_head, i - window < j ≤ i) v_j · W_o

  Over whole windows longer than `window`, the length is cut into blocks of `window`
  positions and each block's queries attend to the keys of their own block and the one
  before (blocked form): [.., length, 2 · window] logits, memory O(length · window)
  instead of length². Otherwise (and when decoding) one [length, memory_length] map
  with the window as its mask.
  """

  def __init__(self, heads=4, window=32):
    self.heads = heads
    self.window = window

  def __call__(self, x, context):
    d_model = x.shape.get_dim_by_name("d_model")
    heads, d_head = split_heads(d_model, self.heads, None)
    q = project_to_heads(x, context, "q", heads, d_head) * (1.0 / math.sqrt(d_head.size))
    k = project_to_heads(x, context, "k", heads, d_head)
    v = project_to_heads(x, context, "v", heads, d_head)
    if context.decoding or self.window >= context.length.size:
      o = self.masked(q, context.memory(k), context.memory(v), d_head, context)
    else:
      if context.prefilling:  # the decoding steps read the keys and values
        context.memory(k), context.memory(v)
      o = self.blocked(q, k, v, d_head, context)
    return output_projection(o, context, heads, d_head, d_model)

  def masked(self, q, k, v, d_head, context):
    logits = mtf.einsum([q, k], reduced_dims=[d_head])
    logits += window_bias(context.distance(), self.window, logits.dtype)
    weights = fused.softmax(logits, context.memory_length, context)
    return mtf.einsum([weights, v], reduced_dims=[context.memory_length])

  def blocked(self, q, k, v, d_head, context):
    """Query t of block c (position cW + t) against key u of the previous block and
    this one (position (c - 1)W + u, u < 2W): distance W + t - u."""
    length, window = context.length, self.window
    if length.size % window:
      raise ValueError("LocalAttention.window=%d does not divide the length %d"
                       % (window, length.size))
    blocks = mtf.Dimension("blocks", length.size // window)
    block = mtf.Dimension("block", window)
    keys = mtf.Dimension("memory_block", window)

    def previous_and_this_block(x):
      x = mtf.replace_dimensions(x, length, [blocks, keys])
      return mtf.concat([mtf.shift(x, 1, blocks, wrap=False), x], "memory_block")

    q = mtf.replace_dimensions(q, length, [blocks, block])
    k, v = previous_and_this_block(k), previous_and_this_block(v)
    memory_block = k.shape.get_dim_by_name("memory_block")
    t = mtf.range(q.mesh, block, tf.int32)
    u = mtf.range(q.mesh, memory_block, tf.int32)
    c = mtf.range(q.mesh, blocks, tf.int32)
    logits = mtf.einsum([q, k], reduced_dims=[d_head])
    logits += window_bias(window + t - u, window, logits.dtype)
    # Block 0 has no previous block: its first W keys are padding.
    before_start = mtf.less((c - 1) * window + u, 0)
    logits += mtf.cast(before_start, logits.dtype) * -1e9
    weights = fused.softmax(logits, memory_block, context)
    o = mtf.einsum([weights, v], reduced_dims=[memory_block])
    return mtf.replace_dimensions(o, [blocks, block], length)
