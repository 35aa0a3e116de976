"""Channel mixer: group-linear (block-diagonal per head) feed-forward."""
import gin

from layers import variables
from layers.attention import split_heads
from layers.feed_forward import activation
from mtf_compat import mtf


@gin.configurable
class GroupFeedForward:
  """A feed-forward layer per head: x is viewed as [.., heads, d_head] and for each h

    y[h] = act(x[h] W_in[h]) W_out[h],  or with glu=True
    y[h] = (act(x[h] W_in[h]) ⊙ x[h] W_gate[h]) W_out[h]

  W_in, W_gate [heads, d_head, d_ff], W_out [heads, d_ff, d_head], d_ff = multiplier ·
  d_head per head: the weights of FeedForward restricted to a block diagonal, 1/heads of
  its parameters and FLOPs. Its tensors hold both heads and d_ff, so a layout may map
  only one of the two to any one mesh axis.
  """

  def __init__(self, heads=4, multiplier=4, activation="gelu", glu=False):
    self.heads = heads
    self.multiplier = multiplier
    self.activation = activation
    self.glu = glu

  def __call__(self, x, context):
    act = activation(self.activation, context)
    d_model = x.shape.get_dim_by_name("d_model")
    heads, d_head = split_heads(d_model, self.heads, None)
    d_ff = mtf.Dimension("d_ff", d_head.size * self.multiplier)
    x = mtf.replace_dimensions(x, d_model, [heads, d_head])

    def project_in(name):
      w = variables.weight(context, name, [heads, d_head, d_ff], ["d_head"])
      return mtf.einsum([x, w], reduced_dims=[d_head])

    h = act(project_in("in"))
    if self.glu:
      h *= project_in("gate")
    w_out = variables.weight(context, "out", [heads, d_ff, d_head], ["d_ff"],
                             output_projection=True)
    y = mtf.einsum([h, w_out], reduced_dims=[d_ff])
    return mtf.replace_dimensions(y, [heads, d_head], d_model)
