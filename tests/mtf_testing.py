"""Build an mtf graph, lower it on a (possibly multi-device) placement mesh, run it."""
import numpy as np

from mtf_compat import mtf, tf
from layers.context import Context, TRAIN


def make_dims(batch=2, length=8, d_model=16, vocab=256):
  return {"batch": mtf.Dimension("batch", batch),
          "length": mtf.Dimension("length", length),
          "memory_length": mtf.Dimension("memory_length", length),
          "d_model": mtf.Dimension("d_model", d_model),
          "vocab": mtf.Dimension("vocab", vocab)}


class MtfRunner:
  """One mtf graph on one mesh; `run` lowers it (once) and evaluates tensors.

    with tf.Graph().as_default():
      r = MtfRunner()
      y = layer(r.constant(x_np, ["batch", "length", "d_model"]), r.context)
      y_np = r.run(y)
  """

  def __init__(self, mesh_shape="", layout="", mode=TRAIN, num_layers=1, **dims):
    self.graph = mtf.Graph()
    self.mesh = mtf.Mesh(self.graph, "mesh")
    self.mesh_shape = mtf.convert_to_shape(mesh_shape)
    self.layout = mtf.convert_to_layout_rules(layout)
    self.context = Context(self.mesh, mode, make_dims(**dims), num_layers=num_layers,
                           mesh_shape=self.mesh_shape, layout_rules=self.layout)
    self.lowering = None
    self.session = None

  def dims(self, names):
    return [self.context.dims[n] if isinstance(n, str) else n for n in names]

  def constant(self, value, names, dtype=tf.float32):
    shape = mtf.Shape(self.dims(names))
    return mtf.import_tf_tensor(self.mesh, tf.constant(value, dtype), shape)

  def lower(self):
    n = self.mesh_shape.size
    devices = ["/device:CPU:%d" % i for i in range(n)] if n > 1 else [""]
    impl = mtf.placement_mesh_impl.PlacementMeshImpl(self.mesh_shape, self.layout,
                                                     devices)
    self.lowering = mtf.Lowering(self.graph, {self.mesh: impl})
    config = tf.ConfigProto(device_count={"CPU": max(n, 1)})
    # Grappler's rewrites preserve the math these tests check and cost more than the
    # tiny graphs' run (a fifth of the time of the mesh tests); the CLI tests keep them.
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    self.session = tf.Session(config=config)
    self.session.run(tf.global_variables_initializer())
    self.session.run(self.lowering.copy_masters_to_slices())
    return self.lowering

  def tf_tensor(self, x):
    return self.lowering.export_to_tf_tensor(x)

  def tf_op(self, op):
    return self.lowering.lowered_operation(op)

  def run(self, fetches):
    """Evaluates mtf tensors (a tensor, list or dict); lowers on first use."""
    if self.lowering is None:
      self.lower()
    tf_fetches = tf.nest.map_structure(
        lambda t: self.tf_tensor(t) if isinstance(t, mtf.Tensor) else self.tf_op(t),
        fetches)
    return self.session.run(tf_fetches)

  def variable_value(self, var):
    """The full value of an mtf variable (op or tensor), read from its slices."""
    op = var.operation if isinstance(var, mtf.Tensor) else var
    return self.session.run(self.lowering.export_to_tf_tensor(op.outputs[0]))


def rng(seed=0):
  return np.random.RandomState(seed)
