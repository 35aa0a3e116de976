"""Adam with bias correction and decoupled weight decay."""
import math

import gin

from mtf_compat import mtf
from optimizers import base


def power(beta, t):
  """beta ** t for a float beta in [0, 1) and an mtf scalar t ≥ 1."""
  return mtf.exp(t * math.log(beta)) if beta > 0 else mtf.zeros_like(t)


@gin.configurable
class Adam(base.Optimizer):
  """m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;  t ← t + 1
  m̂ = m / (1 − β1^t);  v̂ = v / (1 − β2^t)
  w ← w − lr · (m̂ / (√v̂ + ε) + wd · w)

  t is a float32 scalar slot per variable (`<var>/adam_step`): it counts the updates
  actually applied to that variable (a step skipped by `apply_if` does not count) and
  is saved and restored with the checkpoint like m and v.
  """

  def __init__(self, learning_rate, beta1=0.9, beta2=0.999, epsilon=1e-8,
               weight_decay=0.0):
    super().__init__(learning_rate, weight_decay)
    self.beta1 = beta1
    self.beta2 = beta2
    self.epsilon = epsilon

  def update(self, grad, var):
    m = self.slot(var, "adam_m", var.shape)
    v = self.slot(var, "adam_v", var.shape)
    t = self.slot(var, "adam_step", [])
    new_t = t + 1.0
    new_m = m * self.beta1 + grad * (1.0 - self.beta1)
    new_v = v * self.beta2 + mtf.square(grad) * (1.0 - self.beta2)
    m_hat = new_m / (1.0 - power(self.beta1, new_t))
    v_hat = new_v / (1.0 - power(self.beta2, new_t))
    update = m_hat / (mtf.sqrt(v_hat) + self.epsilon)
    return update, [(m, new_m), (v, new_v), (t, new_t)]
