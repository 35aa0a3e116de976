"""Residual sublayers: pre-norm x + F(norm(x)) or ReZero x + α·F(x)."""
import gin

from layers import variables
from layers.norm import LayerNorm
from mtf_compat import tf


@gin.configurable
class Residual:
  """y = x + α · F(norm(x)).

  Pre-norm (the default): α = 1, norm = LayerNorm.
  ReZero (Bachlechner et al. 2020): α a learned scalar, 0 at init, so every block is
  the identity at init; `norm=False` drops the norm as in the paper;
  `rezero_lr_multiplier` scales α's learning rate (read by the optimizers).
  """

  def __init__(self, norm=True, rezero=False, rezero_lr_multiplier=1.0):
    self.norm = norm
    self.rezero = rezero
    self.rezero_lr_multiplier = rezero_lr_multiplier

  def __call__(self, x, sublayer, context, name):
    return x + self.branch(x, sublayer, context, name)

  def branch(self, x, sublayer, context, name):
    """α · F(norm(x)): the sublayer without the skip, which reversible residual streams
    (layers/residual_stream.py) add in their own way."""
    with tf.variable_scope(name):
      h = x
      if self.norm:
        with tf.variable_scope("norm"):
          h = LayerNorm()(h, context)
      with tf.variable_scope("mixer"):
        h = sublayer(h, context)
      if self.rezero:
        h *= variables.scalar(context, "rezero_alpha", 0.0, variables.REZERO,
                              lr_multiplier=self.rezero_lr_multiplier)
      return h
