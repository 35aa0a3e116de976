"""Layer normalisation over one named dimension."""
import gin

from layers import fused
from layers import variables
from mtf_compat import mtf, tf


@gin.configurable
class LayerNorm:
  """y = (x - mean) / sqrt(var + ε) · g + b over `dim_name` (g = 1, b = 0 at init)."""

  def __init__(self, dim_name="d_model", epsilon=1e-5, center=True):
    self.dim_name = dim_name
    self.epsilon = epsilon
    self.center = center

  def __call__(self, x, context):
    dim = x.shape.get_dim_by_name(self.dim_name)
    y = fused.normalize(x, dim, self.epsilon, context)
    scale = variables.variable(context, "scale", [dim], tf.ones_initializer(),
                               variables.NORM)
    y *= scale
    if self.center:
      y += variables.variable(context, "bias", [dim], tf.zeros_initializer(),
                              variables.NORM)
    return y
