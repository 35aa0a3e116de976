"""What every layer is told when it is called: mesh, mode, dimensions and dtypes."""
from mtf_compat import mtf, tf

TRAIN, EVAL, PREDICT = "train", "eval", "predict"


class Context:
  """Per-graph state shared by the layers of one model.

  `dims` maps the project-wide dimension names (`batch`, `length`, `memory_length`,
  `d_model`, `heads`, `d_head`, `d_ff`, `vocab`) to `mtf.Dimension`s. Layers create
  their own dimensions (e.g. their own `heads`) when they need different sizes, but
  always under these names so the layout rules apply to them.
  """

  def __init__(self, mesh, mode, dims, num_layers, activation_dtype=tf.float32):
    self.mesh = mesh
    self.mode = mode
    self.dims = dict(dims)
    self.num_layers = num_layers
    self.activation_dtype = activation_dtype
    # Master weights and optimizer state stay float32 whatever the activations are.
    self.variable_dtype = mtf.VariableDType(tf.float32, tf.float32, activation_dtype)
    self.layer_index = 0

  @property
  def train(self):
    return self.mode == TRAIN

  def dim(self, name, size=None):
    """The named dimension, or a new one of that name with another size."""
    if size is None:
      return self.dims[name]
    return mtf.Dimension(name, size)

  @property
  def length(self):
    return self.dims["length"]

  @property
  def memory_length(self):
    return self.dims["memory_length"]

  def to_memory(self, x):
    """Renames `length` to `memory_length`: the key side of a seq x seq map."""
    return mtf.replace_dimensions(x, self.length, self.memory_length)

  def causal_mask(self, dtype=None):
    """M[length i, memory_length j] = 1 where j <= i, else 0."""
    query = mtf.range(self.mesh, self.length, tf.int32)
    key = mtf.range(self.mesh, self.memory_length, tf.int32)
    return mtf.cast(mtf.less_equal(key, query), dtype or self.activation_dtype)

  def causal_bias(self, dtype=None):
    """log M: 0 where j <= i, a large negative number elsewhere (added to logits)."""
    return (1.0 - self.causal_mask(dtype)) * -1e9
