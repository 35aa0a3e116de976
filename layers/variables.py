"""Variable creation with a record of each variable's role and fan-in dimensions.

The optimizers read the record (weight decay and clipping exemptions, adaptive gradient
clipping units, learning-rate multipliers) instead of guessing from variable names.
"""
import dataclasses
import math

import gin
import numpy as np

from mtf_compat import mtf, tf

# Roles a variable can play; the optimizers decide exemptions from these.
WEIGHT = "weight"          # a projection: decayed, clipped per unit
OUTPUT = "output"          # the logit projection: exempt from AGC by default
EMBEDDING = "embedding"    # byte and position embeddings
NORM = "norm"              # norm scales and biases
BIAS = "bias"              # additive biases
REZERO = "rezero"          # ReZero and CONTAINER mixing scalars
SEQ_MAP = "seq_map"        # learned [.., length, memory_length] token-mixing maps
ROLES = (WEIGHT, OUTPUT, EMBEDDING, NORM, BIAS, REZERO, SEQ_MAP)


@dataclasses.dataclass(frozen=True)
class VariableRecord:
  role: str
  fan_in_dims: tuple  # names of the dims summed over when the variable is applied
  lr_multiplier: float = 1.0


def record_of(var):
  """The record of an mtf Variable (operation) or of the tensor it outputs."""
  op = var.operation if isinstance(var, mtf.Tensor) else var
  return getattr(op, "record", None) or VariableRecord(WEIGHT, ())


def normal_initializer(stddev):
  return tf.random_normal_initializer(stddev=stddev)


class OrthogonalInitializer(tf.keras.initializers.Initializer):
  """Orthogonal over (fan-in, fan-out): reshaped to [prod(fan-in), prod(fan-out)],
  the matrix has orthonormal columns (or rows, when fan-out > fan-in), times `gain`."""

  def __init__(self, fan_in_axes, gain=1.0):
    self.fan_in_axes = tuple(fan_in_axes)
    self.gain = gain

  def __call__(self, shape, dtype=tf.float32, partition_info=None, **kwargs):
    del partition_info, kwargs
    shape = list(shape)
    fan_out_axes = [a for a in range(len(shape)) if a not in self.fan_in_axes]
    fan_in = int(np.prod([shape[a] for a in self.fan_in_axes]))
    fan_out = int(np.prod([shape[a] for a in fan_out_axes]))
    matrix = tf.orthogonal_initializer(gain=self.gain)([fan_in, fan_out], dtype=dtype)
    permuted = [shape[a] for a in self.fan_in_axes] + [shape[a] for a in fan_out_axes]
    order = list(self.fan_in_axes) + fan_out_axes
    return tf.transpose(tf.reshape(matrix, permuted), np.argsort(order))


@gin.configurable
class Initialization:
  """How weights start.

  kind: "normal" (σ = stddev) or "orthogonal" (over fan-in x fan-out).
  small_seq_maps: seq x seq maps use σ/length (the thread's "0.02 / context").
  scale_outputs_by_depth: the output projection of each residual branch uses σ/√B,
    B = the model's number of residual branches (GPT-2's 1/√(2L) for L blocks of
    two branches; L for gMLP, whose blocks have one).
  """

  def __init__(self, kind="normal", stddev=0.02, small_seq_maps=True,
               scale_outputs_by_depth=False):
    if kind not in ("normal", "orthogonal"):
      raise ValueError("Initialization.kind must be 'normal' or 'orthogonal', got %r"
                       % kind)
    self.kind = kind
    self.stddev = stddev
    self.small_seq_maps = small_seq_maps
    self.scale_outputs_by_depth = scale_outputs_by_depth

  def for_weight(self, shape, fan_in_dims, context, output_projection=False):
    scale = 1.0
    if output_projection and self.scale_outputs_by_depth:
      scale = 1.0 / math.sqrt(context.residual_branches)
    if self.kind == "orthogonal":
      axes = [i for i, d in enumerate(shape.dims) if d.name in fan_in_dims]
      return OrthogonalInitializer(axes, gain=scale)
    return normal_initializer(self.stddev * scale)

  def for_seq_map(self, context):
    length = context.length.size
    return normal_initializer(self.stddev / length if self.small_seq_maps
                              else self.stddev)


def variable(context, name, shape, initializer, role, fan_in_dims=(),
             lr_multiplier=1.0):
  """mtf.get_variable plus a VariableRecord kept on the Variable operation."""
  if role not in ROLES:
    raise ValueError("unknown variable role %r" % role)
  shape = mtf.Shape(shape) if not isinstance(shape, mtf.Shape) else shape
  missing = [n for n in fan_in_dims if n not in shape.dimension_names]
  if missing:
    raise ValueError("fan-in dims %s not in the shape %s of %s" % (missing, shape, name))
  v = mtf.get_variable(context.mesh, name, shape, dtype=context.variable_dtype,
                       initializer=initializer)
  v.operation.record = VariableRecord(role, tuple(fan_in_dims), lr_multiplier)
  return v


def weight(context, name, shape, fan_in_dims, output_projection=False, role=WEIGHT,
           initialization=None):
  """A projection weight initialised by the gin-configured Initialization."""
  initialization = initialization or Initialization()
  shape = mtf.Shape(shape) if not isinstance(shape, mtf.Shape) else shape
  init = initialization.for_weight(shape, fan_in_dims, context, output_projection)
  return variable(context, name, shape, init, role, fan_in_dims)


def seq_map(context, name, shape, initialization=None, initializer=None):
  """A learned map over [.., length, memory_length] (memory_length is its fan-in)."""
  initialization = initialization or Initialization()
  init = initializer or initialization.for_seq_map(context)
  return variable(context, name, shape, init, SEQ_MAP, ("memory_length",))


def scalar(context, name, value, role=REZERO, lr_multiplier=1.0):
  return variable(context, name, [], tf.constant_initializer(value), role,
                  lr_multiplier=lr_multiplier)
