"""Gradient clipping: by global norm, and adaptive (AGC, Brock et al. 2021) per unit.

All functions take and return lists aligned with the variables; None gradients stay
None, the others come back float32.
"""
import gin

from layers import variables as variables_lib
from mtf_compat import mtf

MIN_WEIGHT_NORM = 1e-3  # ‖W_i‖* floor: lets zero-initialised units start moving


def _float(grads):
  return [None if g is None else mtf.to_float(g) for g in grads]


def global_norm(grads):
  """‖g‖₂ over every element of every (non-None) gradient: an mtf scalar."""
  squares = [mtf.reduce_sum(mtf.square(g)) for g in _float(grads) if g is not None]
  if not squares:
    raise ValueError("global_norm: every gradient is None")
  return mtf.sqrt(mtf.add_n(squares))


def clip_by_global_norm(grads, clip_norm, norm=None):
  """g ← g · min(1, c / ‖g‖₂), computed as c / max(‖g‖₂, c): right for every c > 0
  and without a division by zero when ‖g‖₂ = 0. `norm` reuses a computed ‖g‖₂."""
  norm = global_norm(grads) if norm is None else norm
  scale = clip_norm / mtf.maximum(norm, clip_norm)
  return [None if g is None else g * scale for g in _float(grads)]


def unit_shape(var):
  """The dims that index a unit: the variable's dims outside its fan-in dims. Scalars,
  vectors and variables without fan-in dims are one unit (the empty shape)."""
  record = variables_lib.record_of(var)
  if var.shape.ndims <= 1 or not record.fan_in_dims:
    return mtf.Shape([])
  return mtf.Shape([d for d in var.shape.dims if d.name not in record.fan_in_dims])


def unit_norms(x, units):
  """‖x_i‖₂ for every unit i: the sum of squares over the dims not in `units`."""
  return mtf.sqrt(mtf.reduce_sum(mtf.square(x), output_shape=units))


def adaptive_clip(grads, variables, threshold, exempt_roles=(variables_lib.OUTPUT,)):
  """Per unit i (norms reduce over the fan-in dims):
    ‖W_i‖* = max(‖W_i‖, 1e-3);  if ‖G_i‖ / ‖W_i‖* > λ:  G_i ← λ ‖W_i‖* / ‖G_i‖ · G_i
  computed as G_i · L / max(‖G_i‖, L) with L = λ ‖W_i‖* (L > 0, so no 0 / 0).
  Variables whose role is in `exempt_roles` keep their gradient.
  """
  clipped = []
  for grad, var in zip(_float(grads), variables):
    if grad is None or variables_lib.record_of(var).role in exempt_roles:
      clipped.append(grad)
      continue
    value = mtf.to_float(var.value if isinstance(var, mtf.Variable) else var)
    units = unit_shape(var)
    limit = mtf.maximum(unit_norms(value, units), MIN_WEIGHT_NORM) * threshold
    clipped.append(grad * (limit / mtf.maximum(unit_norms(grad, units), limit)))
  return clipped


@gin.configurable
class GradientClipping:
  """Clips gradients before the optimizer sees them.

  global_norm: c for g ← g · min(1, c / ‖g‖₂), or None.
  agc: λ for adaptive clipping per unit, or None; `agc_exempt_roles` are left alone.
  When both are set AGC runs first, then the global norm bounds what is left, so the
  global bound c holds for the gradients the optimizer receives.
  `__call__(grads, variables)` returns (clipped grads, ‖g‖₂ before any clipping).
  """

  def __init__(self, global_norm=None, agc=None,  # pylint: disable=redefined-outer-name
               agc_exempt_roles=(variables_lib.OUTPUT,)):
    for name, value in (("global_norm", global_norm), ("agc", agc)):
      if value is not None and value <= 0:
        raise ValueError("GradientClipping.%s must be positive or None, got %r"
                         % (name, value))
    self.clip_norm = global_norm
    self.agc = agc
    self.agc_exempt_roles = tuple(agc_exempt_roles)

  def __call__(self, grads, variables):
    grads = _float(grads)
    norm = global_norm(grads)
    if self.agc is not None:
      grads = adaptive_clip(grads, variables, self.agc, self.agc_exempt_roles)
    if self.clip_norm is not None:
      grads = clip_by_global_norm(grads, self.clip_norm,
                                  norm=None if self.agc is not None else norm)
    return grads, norm
