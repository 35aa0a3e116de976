"""One layer built once on a fed input, so many inputs meet the same variables."""
import numpy as np

from layers import variables
from mtf_compat import mtf, tf
from tests.mtf_testing import MtfRunner, rng

NAMES = ["batch", "length", "d_model"]


class LayerUnderTest:
  """`layer` applied to a fed x [batch, length, d_model] on a one-device mesh.

  y(x): the output; values(): every variable by name; randomize(): gives every variable
  N(0, scale²) values, so numpy references also see values other than the special init
  ones (b = 1, α = 1, near-zero maps); gradients(x): d(Σ y·c)/d(variable) by name, for a
  fixed random c.
  """

  def __init__(self, layer, batch=2, length=6, d_model=8, seed=0):
    self.graph = tf.Graph()
    with self.graph.as_default():
      tf.set_random_seed(seed)
      r = self.runner = MtfRunner(batch=batch, length=length, d_model=d_model)
      self.x = tf.placeholder(tf.float32, [batch, length, d_model])
      x = mtf.import_tf_tensor(r.mesh, self.x, mtf.Shape(r.dims(NAMES)))
      y = layer(x, r.context)
      assert y.shape == x.shape, (y.shape, x.shape)
      c = r.constant(rng(seed + 1).randn(batch, length, d_model), NAMES)
      self.variables = list(r.graph.trainable_variables)
      grads = mtf.gradients([mtf.reduce_sum(y * c)],
                            [v.outputs[0] for v in self.variables])
      missing = [v.name for v, g in zip(self.variables, grads) if g is None]
      assert not missing, "no gradient path to %s" % missing
      r.lower()
      self._y = r.tf_tensor(y)
      self._grads = [r.tf_tensor(g) for g in grads]
      self._values = [r.tf_tensor(v.outputs[0]) for v in self.variables]

  def _run(self, fetches, x=None):
    feed = {} if x is None else {self.x: x}
    return self.runner.session.run(fetches, feed)

  def y(self, x):
    return self._run(self._y, x)

  def values(self):
    return dict(zip(self.names, self._run(self._values)))

  def gradients(self, x):
    return dict(zip(self.names, self._run(self._grads, x)))

  @property
  def names(self):
    return [v.name for v in self.variables]

  def records(self):
    return {v.name: variables.record_of(v) for v in self.variables}

  def shapes(self):
    return {v.name: v.shape for v in self.variables}

  def values_at_init_then_random(self):
    """Yields values() and then randomize(): a reference test checks both."""
    yield self.values()
    yield self.randomize()

  def randomize(self, scale=0.5, seed=0):
    with self.graph.as_default():
      assigns = [
          tf.assign(v.get_master(), np.float32(
              scale * rng(seed + 100 + i).randn(*v.shape.to_integer_list)))
          for i, v in enumerate(self.variables)]
      self.runner.session.run(assigns)
      self.runner.session.run(self.runner.lowering.copy_masters_to_slices())
    return self.values()


def random_input(batch=2, length=6, d_model=8, seed=0):
  return rng(seed).randn(batch, length, d_model).astype(np.float32)
