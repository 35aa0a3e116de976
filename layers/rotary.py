"""Rotary position embedding (RoPE, Su et al. 2021) of queries and keys."""
import math

from mtf_compat import mtf, tf


def rotate(x, context, base=10000.0):
  """x rotated by its position p, pairing channel i with channel i + d_head/2:

    (x_i, x_{i+d/2}) -> (x_i cos pθ_i - x_{i+d/2} sin pθ_i,
                         x_{i+d/2} cos pθ_i + x_i sin pθ_i),   θ_i = base^(-2i/d_head)

  so (R_p q) · (R_s k) depends on p - s only. x is [.., length, d_head], or a decoding
  step's [.., d_head] (rotated by the step's position).
  """
  d_head = x.shape.get_dim_by_name("d_head")
  if d_head.size % 2:
    raise ValueError("rotary positions need an even d_head, got %d" % d_head.size)
  half = mtf.Dimension("d_head", d_head.size // 2)
  theta = mtf.exp(mtf.range(x.mesh, half, tf.float32) * (-2.0 * math.log(base)
                                                         / d_head.size))
  angle = mtf.cast(context.positions(), tf.float32) * theta
  cos = mtf.cast(mtf.cos(angle), x.dtype)
  sin = mtf.cast(mtf.sin(angle), x.dtype)
  x1 = mtf.slice(x, 0, half.size, "d_head")
  x2 = mtf.slice(x, half.size, half.size, "d_head")
  return mtf.concat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], "d_head")
