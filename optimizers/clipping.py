"""Gradient clipping: by global norm, and adaptive (AGC, Brock et al. 2021) per unit.

All functions take and return lists aligned with the variables; None gradients stay
None, the others come back float32.
"""
import gin

from layers import variables as variables_lib
from mtf_compat import mtf, tf

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
  """The dims that index a unit: the variable's dims outside its fan-in dims. An
  embedding's unit is a row (all dims but the last, the vector a row looks up).
  Scalars, vectors and other variables without fan-in dims are one unit (the empty
  shape)."""
  record = variables_lib.record_of(var)
  if var.shape.ndims <= 1:
    return mtf.Shape([])
  if record.role == variables_lib.EMBEDDING:
    return mtf.Shape(var.shape.dims[:-1])
  if not record.fan_in_dims:
    return mtf.Shape([])
  return mtf.Shape([d for d in var.shape.dims if d.name not in record.fan_in_dims])


def live_entries(var):
  """For a seq² map [.., length, memory_length]: 1 where memory_length j ≤ length i
  (the entries the causal mask lets act), 0 elsewhere; None for other variables, whose
  entries are all live. The masked entries get no gradient and keep their initial
  values, so counting them would inflate ‖W_i‖ (by ≈ 1.8× on average at init for
  context 128, where row i has i + 1 live entries of 128)."""
  names = var.shape.dimension_names
  if (variables_lib.record_of(var).role != variables_lib.SEQ_MAP
      or "length" not in names or "memory_length" not in names):
    return None
  query = mtf.range(var.mesh, var.shape.get_dim_by_name("length"), tf.int32)
  key = mtf.range(var.mesh, var.shape.get_dim_by_name("memory_length"), tf.int32)
  return mtf.cast(mtf.less_equal(key, query), tf.float32)


def unit_norms(x, units):
  """‖x_i‖₂ for every unit i: the sum of squares over the dims not in `units`."""
  return mtf.sqrt(mtf.reduce_sum(mtf.square(x), output_shape=units))


def adaptive_clip(grads, variables, threshold, exempt_roles=(variables_lib.OUTPUT,)):
  """Per unit i (Brock et al. 2021: one unit per output unit; norms reduce over the
  fan-in dims, see `unit_shape`):
    ‖W_i‖* = max(‖W_i‖, 1e-3);  if ‖G_i‖ / ‖W_i‖* > λ:  G_i ← λ ‖W_i‖* / ‖G_i‖ · G_i
  computed as G_i · L / max(‖G_i‖, L) with L = λ ‖W_i‖* (L > 0, so no 0 / 0).
  For seq² maps ‖W_i‖ and ‖G_i‖ count the live entries only (`live_entries`).
  Variables whose role is in `exempt_roles` keep their gradient.
  """
  clipped = []
  for grad, var in zip(_float(grads), variables):
    if grad is None or variables_lib.record_of(var).role in exempt_roles:
      clipped.append(grad)
      continue
    value = mtf.to_float(var.value if isinstance(var, mtf.Variable) else var)
    units = unit_shape(var)
    live = live_entries(var)
    live_grad = grad
    if live is not None:
      value, live_grad = value * live, grad * live
    limit = mtf.maximum(unit_norms(value, units), MIN_WEIGHT_NORM) * threshold
    clipped.append(grad * (limit / mtf.maximum(unit_norms(live_grad, units), limit)))
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
