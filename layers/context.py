"""What every layer is told when it is called: mesh, mode, dimensions and dtypes,
and, when decoding one byte at a time, the position and the memories of past steps."""
from mtf_compat import mtf, tf

TRAIN, EVAL, PREDICT = "train", "eval", "predict"


def pick(x, dim, index):
  """x[..., index, ...] along dim, for an integer mtf index (broadcast over rows).

  A one-hot product rather than a gather, so it works whichever mesh axis splits dim.
  """
  at = mtf.cast(mtf.equal(mtf.range(x.mesh, dim, tf.int32), index), x.dtype)
  return mtf.reduce_sum(x * at, reduced_dim=dim)


def write(x, dim, index, value):
  """x with x[..., index, ...] = value along dim (unchanged where index is outside)."""
  here = mtf.equal(mtf.range(x.mesh, dim, tf.int32), index)
  return mtf.where(here, value, x, output_shape=x.shape)


class Context:
  """Per-graph state shared by the layers of one model.

  `dims` maps the project-wide dimension names (`batch`, `length`, `memory_length`,
  `d_model`, `heads`, `d_head`, `d_ff`, `vocab`) to `mtf.Dimension`s. Layers create
  their own dimensions (e.g. their own `heads`) when they need different sizes, but
  always under these names so the layout rules apply to them.

  Incremental decoding (models/sampling.py) calls the model twice. The prefill call
  (`start_prefill`) runs over whole windows as usual and records every memory a layer
  builds with `memory(x)`: attention's keys and values, the inputs of seq² maps. Each
  decoding step (`start_step`) then runs on one position for every row: x has no
  `length` axis, `memory(x)` writes x into the recorded memory at that position, and
  `causal_mask`, `at_position` give the position's row of every [length, ..] map.
  Layers call `memory` in the same order on every call, which is how each finds its own.

  Recurrent layers (linear attention, retention, short convolutions) keep a state
  instead of a memory over positions: prefilling records, with `carry`, their state
  after the positions before `first_step`; each step reads it back with `carried` and
  carries the updated state on, so a step's cost does not depend on the position.
  """

  def __init__(self, mesh, mode, dims, num_layers, activation_dtype=tf.float32,
               mesh_shape=None, layout_rules=None):
    self.mesh = mesh
    self.mode = mode
    self.dims = dict(dims)
    self.num_layers = num_layers
    # Residual branches of the whole model (depth-scaled init divides by its square
    # root): two per block (token and channel mixer) unless the model says otherwise.
    self.residual_branches = 2 * num_layers
    self.activation_dtype = activation_dtype
    # Master weights and optimizer state stay float32 whatever the activations are.
    self.variable_dtype = mtf.VariableDType(tf.float32, tf.float32, activation_dtype)
    self.layer_index = 0
    self.mesh_shape = mtf.convert_to_shape(mesh_shape or [])
    self.layout_rules = mtf.convert_to_layout_rules(layout_rules or [])
    self.position = None    # decoding: an int32 scalar, the position of every row
    self.memories_in = None  # decoding: the memories after the previous step
    self.memories = None     # prefill and decoding: the memories of this call
    self.first_step = 0      # prefill: the position the first decoding step runs at
    self.losses = []         # scalars the layers add to the optimised loss (add_loss)

  @property
  def train(self):
    return self.mode == TRAIN

  def add_loss(self, loss):
    """A scalar a layer asks to be optimised besides the cross-entropy (a mixture of
    experts' load-balancing loss); GPT.logits starts every forward pass with none."""
    self.losses.append(loss)

  def dim(self, name, size=None):
    """The named dimension, or a new one of that name with another size."""
    if size is None:
      return self.dims[name]
    return mtf.Dimension(name, size)

  def is_split(self, dim):
    """Whether the layout splits dim over the mesh (a reduction over it communicates)."""
    axis = self.layout_rules.tensor_dimension_to_mesh_axis(dim, self.mesh_shape)
    return axis is not None and self.mesh_shape.dims[axis].size > 1

  @property
  def length(self):
    return self.dims["length"]

  @property
  def memory_length(self):
    return self.dims["memory_length"]

  @property
  def decoding(self):
    return self.position is not None

  @property
  def prefilling(self):
    return self.memories is not None and not self.decoding

  def start_prefill(self, first_step=0):
    """The next model call runs over whole windows and records its memories; the first
    decoding step will run at `first_step` (an int32 scalar, the same for every row)."""
    self.position, self.memories_in, self.memories = None, None, []
    self.first_step = first_step

  def start_step(self, position, memories):
    """The next model call decodes `position` given the memories of the last call."""
    self.position, self.memories_in, self.memories = position, list(memories), []

  def stop_decoding(self):
    """Back to whole windows, recording nothing."""
    self.position, self.memories_in, self.memories = None, None, None

  def memory(self, x):
    """x over `memory_length`: the key side of a seq x seq map.

    Over whole windows, x's `length` is renamed. When decoding, x is the current
    position's value; it is written into this layer's memory, which is returned.
    """
    if not self.decoding:
      memory = mtf.replace_dimensions(x, self.length, self.memory_length)
    else:
      memory = write(self.memories_in[len(self.memories)], self.memory_length,
                     self.position, x)
    if self.memories is not None:
      self.memories.append(memory)
    return memory

  def carried(self):
    """When decoding: this recurrent layer's state after the previous position."""
    return self.memories_in[len(self.memories)]

  def carry(self, state):
    """Records a recurrent layer's state (nothing is recorded over whole windows unless
    prefilling). Call `carried` first, then `carry`, once each per call."""
    if self.memories is not None:
      self.memories.append(state)

  def positions(self):
    """int32 positions of the queries: [length], or the position when decoding."""
    if self.decoding:
      return self.position
    return mtf.range(self.mesh, self.length, tf.int32)

  def distance(self):
    """i - j, query position minus key position: int32 [length, memory_length] (or
    [memory_length] when decoding)."""
    return self.positions() - mtf.range(self.mesh, self.memory_length, tf.int32)

  def at_position(self, x):
    """x itself, or when decoding, x's row at the current position (if it has rows)."""
    if self.decoding and self.length in x.shape.dims:
      return pick(x, self.length, self.position)
    return x

  def causal_mask(self, dtype=None):
    """M[length i, memory_length j] = 1 where j <= i, else 0 (row i = the position
    when decoding)."""
    visible = mtf.greater_equal(self.distance(), 0)
    return mtf.cast(visible, dtype or self.activation_dtype)

  def causal_bias(self, dtype=None):
    """log M: 0 where j <= i, a large negative number elsewhere (added to logits)."""
    return (1.0 - self.causal_mask(dtype)) * -1e9
