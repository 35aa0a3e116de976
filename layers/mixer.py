"""Causal MLP-Mixer token mixing with heads."""
import gin

from layers import fused
from layers import variables
from layers.attention import split_heads
from layers.norm import LayerNorm
from layers.shared_map import apply_map, causal_map
from mtf_compat import mtf, tf


@gin.configurable
class MLPMixer:
  """The token-mixing MLP of MLP-Mixer (Tolstikhin et al. 2021), causal and per head.

  x is viewed as [batch, length, heads, d_head]; for each head h separately

    H = gelu((W1[h] ⊙ M) · LayerNorm(x[h])),   y[h] = (W2[h] ⊙ M) · H

  with W1, W2 of shape [heads, length, memory_length] (role SEQ_MAP), or [length,
  memory_length] when heads=1, the shared map's shape. The MLP's hidden width is the
  length, so the causal mask applies to both layers: hidden unit k reads positions
  j ≤ k and output i reads hidden units k ≤ i. Heads never mix with each other and
  channels never mix at all (that is the channel mixer's job).

  As in the paper, the token MLP reads layer-normalised channels and uses GELU: here the
  LayerNorm is over each head's channels (d_head, which is all of d_model when heads=1),
  with one scale and bias of size d_head shared by the heads. `norm=False` drops it:
  ReZero (x + α·F(x)) has no LayerNorm anywhere in the block.
  """

  def __init__(self, heads=1, norm=True):
    self.heads = heads
    self.norm = norm

  def __call__(self, x, context):
    d_model = x.shape.get_dim_by_name("d_model")
    if self.heads == 1:  # no heads axis, so layouts that split heads still apply
      h, map_dims, channels = x, [], d_model
    else:
      heads, channels = split_heads(d_model, self.heads, None)
      h, map_dims = mtf.replace_dimensions(x, d_model, [heads, channels]), [heads]
    if self.norm:
      with tf.variable_scope("head_norm"):
        h = LayerNorm(dim_name=channels.name)(h, context)
    shape = map_dims + [context.length, context.memory_length]
    w1 = variables.seq_map(context, "w1", shape)
    w2 = variables.seq_map(context, "w2", shape)
    h = fused.gelu(apply_map(causal_map(w1, context), h, context), context)
    y = apply_map(causal_map(w2, context), h, context)
    return mtf.reshape(y, x.shape)
