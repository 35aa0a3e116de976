"""SM3-II (Anil et al. 2019) with Nesterov momentum: AdaGrad-like steps whose second
moments cost Σ dims floats per tensor instead of Π dims."""
import functools

import gin

from mtf_compat import mtf
from optimizers import base


@gin.configurable
class SM3(base.Optimizer):
  """SM3-II. For a tensor of rank ≥ 2 with one accumulator a_i of shape [d_i] per dim:

    ν = min_i a_i (broadcast to the tensor's shape) + g²
    a_i ← max of ν over every dim but d_i
  Rank 0 and 1 use diagonal AdaGrad: one full accumulator a, ν = a + g², a ← ν.
  Then u = g / √ν (u = 0 where ν = 0, which happens only where g = 0), and the
  heavy-ball momentum m ← μ m + u gives the step
    step = u + μ m   (nesterov)   or   step = m   (not nesterov),
  w ← w − lr · (step + wd · w). μ = 0 is plain SM3 and keeps no momentum slot.
  State: Σ dims (or the full size for rank ≤ 1) + (Π dims if μ > 0) floats.

  The learning rate is that of the heavy-ball form, not the SM3 paper's. The paper and
  google-research's SM3 keep an EMA, m' ← μ m' + (1 − μ) u (Nesterov step
  (1 − μ) u + μ m'). From m = m' = 0 the two are proportional at every step,
  m' = (1 − μ) m, and so are the steps: lr here = (1 − μ) · the EMA form's lr, e.g.
  the paper's 0.1 at μ = 0.9 is 0.01 here (10× less: the heavy-ball steady-state step
  is 1/(1 − μ) times u).
  """

  def __init__(self, learning_rate, momentum=0.9, nesterov=True, weight_decay=0.0):
    super().__init__(learning_rate, weight_decay)
    self.momentum = momentum
    self.nesterov = nesterov

  def update(self, grad, var):
    shape = var.shape
    if shape.ndims <= 1:
      accumulator = self.slot(var, "sm3_accumulator", shape)
      nu = accumulator + mtf.square(grad)
      slot_values = [(accumulator, nu)]
    else:
      accumulators = [self.slot(var, "sm3_accumulator_" + d.name, [d])
                      for d in shape.dims]
      cover = functools.reduce(mtf.minimum,
                               [mtf.broadcast(a, shape) for a in accumulators])
      nu = cover + mtf.square(grad)
      slot_values = [(a, mtf.reduce_max(nu, output_shape=a.shape))
                     for a in accumulators]
    # ν ≥ g², so where ν = 0 the gradient is 0 too: dividing by 1 there gives u = 0.
    u = grad / mtf.sqrt(mtf.where(mtf.greater(nu, 0.0), nu, mtf.ones_like(nu)))
    if not self.momentum:
      return u, slot_values
    m = self.slot(var, "sm3_momentum", shape)
    new_m = m * self.momentum + u
    slot_values.append((m, new_m))
    step = u + new_m * self.momentum if self.nesterov else new_m
    return step, slot_values
