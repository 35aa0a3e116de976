"""What SM3 and Adam share: float32 slots, per-variable learning rates, decoupled weight
decay, and assignments that a boolean `apply_if` can cancel."""
from layers import variables as variables_lib
from mtf_compat import mtf, tf

# Optimizer state is float32 whatever the activations are: SM3 accumulators kept in
# bfloat16 stop growing once g² falls below their rounding step.
SLOT_DTYPE = mtf.VariableDType(tf.float32, tf.float32, tf.float32)
DECAYED_ROLES = (variables_lib.WEIGHT, variables_lib.OUTPUT)


def select(condition, if_true, if_false):
  """`if_true` where the scalar boolean `condition` holds, else `if_false`.

  Chosen by tf.where on each slice: mtf.where multiplies by 0 and 1, so a NaN in the
  branch not taken would leak (NaN · 0 = NaN).
  """
  return mtf.slicewise(tf.where_v2, [condition, if_true, if_false],
                       output_shape=if_true.shape, output_dtype=if_true.dtype,
                       splittable_dims=if_true.shape.dims, grad_function=0)


def is_decayed(var):
  """Weight decay applies to projections (rank ≥ 2, role WEIGHT or OUTPUT) only."""
  return (variables_lib.record_of(var).role in DECAYED_ROLES
          and var.shape.ndims >= 2)


class Optimizer(mtf.optimize.Optimizer):
  """w ← w − lr · k · (update(g) + wd · w), k = the variable's lr_multiplier, and the
  wd term only for decayed variables (`is_decayed`).

  Subclasses define `update(grad, var)` -> (update, [(slot, new slot value), ...]),
  with grad cast to float32. Every assignment is guarded by `apply_if`: when it is
  False, weights and slots keep their values, even if the update is NaN.
  """

  def __init__(self, learning_rate, weight_decay=0.0):
    self.learning_rate = learning_rate  # a Python float or an mtf scalar
    self.weight_decay = weight_decay
    self.slot_variables = []

  def apply_grads(self, grads, variables, apply_if=None):
    """Update ops for all variables (None gradients are skipped).

    apply_if: None, or an mtf boolean scalar; when it is False the step changes
    nothing (the trainer passes "loss and gradient norm are finite").
    """
    ops = []
    for grad, var in zip(grads, variables):
      ops.extend(self.apply_grad(grad, var, apply_if))
    if not ops:
      return ops
    return variables[0].graph.combine_assignments(ops)

  def apply_grad(self, grad, var, apply_if=None):
    if grad is None:
      tf.logging.warning("Gradient is None for variable %s", var.name)
      return []
    update, slot_values = self.update(mtf.to_float(grad), var)
    if self.weight_decay and is_decayed(var):
      update += mtf.to_float(var.value) * self.weight_decay
    lr = self.learning_rate * variables_lib.record_of(var).lr_multiplier
    delta = update * lr

    def guarded(new, old):
      return new if apply_if is None else select(apply_if, new, old)

    # assign_sub, not assign(w - delta): the slice is not re-rounded through the
    # activation dtype, and a skipped step subtracts exactly 0.
    ops = [mtf.assign_sub(var, guarded(delta, mtf.zeros_like(delta)))]
    ops += [mtf.assign(slot, guarded(value, slot)) for slot, value in slot_values]
    return ops

  def update(self, grad, var):
    raise NotImplementedError

  def slot(self, var, name, shape):
    """A zero-initialised float32, untrainable variable named `<var>/<name>`."""
    value = mtf.get_variable(var.mesh, var.name + "/" + name, shape, dtype=SLOT_DTYPE,
                             initializer=tf.zeros_initializer(), trainable=False)
    if value.operation not in self.slot_variables:
      self.slot_variables.append(value.operation)
    return value

  def state_bytes(self):
    """Bytes of optimizer state: the sum of the slot variables' sizes."""
    return sum(v.size * v.slice_dtype.size for v in self.slot_variables)


def optimizer_state_bytes(optimizer):
  return optimizer.state_bytes()
