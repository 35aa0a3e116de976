"""Channel mixers: dense feed-forward (optionally GLU)."""
import gin

from layers import fused
from layers import variables
from mtf_compat import mtf

# Activations of x alone; "gelu" is the fused one, which also reads the context.
ACTIVATIONS = {"relu": mtf.relu, "silu": mtf.swish, "identity": lambda x: x,
               "tanh": mtf.tanh, "sigmoid": mtf.sigmoid}


def activation(name, context):
  """The activation called `name`, as a function of x."""
  if name == "gelu":
    return lambda x: fused.gelu(x, context)
  if name not in ACTIVATIONS:
    raise ValueError("unknown activation %r (one of %s)"
                     % (name, sorted(list(ACTIVATIONS) + ["gelu"])))
  return ACTIVATIONS[name]


@gin.configurable
class FeedForward:
  """y = act(x W_in) W_out, or with glu=True y = (act(x W_in) ⊙ x W_gate) W_out."""

  def __init__(self, multiplier=4, activation="gelu", glu=False):
    self.multiplier = multiplier
    self.activation = activation
    self.glu = glu

  def __call__(self, x, context):
    act = activation(self.activation, context)
    d_model = x.shape.get_dim_by_name("d_model")
    d_ff = mtf.Dimension("d_ff", d_model.size * self.multiplier)
    w_in = variables.weight(context, "in", [d_model, d_ff], ["d_model"])
    h = act(mtf.einsum([x, w_in], reduced_dims=[d_model]))
    if self.glu:
      w_gate = variables.weight(context, "gate", [d_model, d_ff], ["d_model"])
      h *= mtf.einsum([x, w_gate], reduced_dims=[d_model])
    w_out = variables.weight(context, "out", [d_ff, d_model], ["d_ff"],
                             output_projection=True)
    return mtf.einsum([h, w_out], reduced_dims=[d_ff])
