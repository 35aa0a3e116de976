"""The fused GELU, softmax and normalisation: their values match numpy, their
hand-written gradients match TF's derivatives of the plain formulas, on one device, on
a mesh that splits another dimension, and (through mtf's ops) on one that splits theirs."""
import numpy as np
import pytest

from layers import fused
from layers.context import PREDICT, TRAIN
from mtf_compat import mtf, tf
from tests import numpy_reference as ref
from tests.mtf_testing import MtfRunner, rng

NAMES = ["batch", "length", "d_model"]
SHAPE = (2, 6, 8)
AXES = {"length": 1, "d_model": 2}


def plain_normalize(x, axis):
  centered = x - tf.reduce_mean(x, axis, keepdims=True)
  return centered * tf.math.rsqrt(tf.reduce_mean(tf.square(centered), axis,
                                                 keepdims=True) + 1e-5)


def numpy_normalize(x, axis):
  return np.moveaxis(ref.layer_norm(np.moveaxis(x, axis, -1), 1.0, 0.0), -1, axis)


def plain_gelu(x):
  return 0.5 * x * (1.0 + tf.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


# name -> (mtf function of (x, dim name, context), numpy reference, plain TF formula)
CASES = {
    "gelu": (lambda x, dim, context: fused.gelu(x, context),
             lambda x, axis: ref.gelu(x), lambda x, axis: plain_gelu(x)),
    "softmax": (lambda x, dim, context: fused.softmax(
        x, x.shape.get_dim_by_name(dim), context),
                ref.softmax, lambda x, axis: tf.nn.softmax(x, axis)),
    "normalize": (lambda x, dim, context: fused.normalize(
        x, x.shape.get_dim_by_name(dim), 1e-5, context),
                  numpy_normalize, plain_normalize),
}


def mtf_value_and_gradient(fn, dim, x_value, c_value, mesh_shape="", layout=""):
  """fn(x) and d(Σ fn(x)·c)/dx through mtf, lowered on the given mesh."""
  with tf.Graph().as_default():
    r = MtfRunner(mesh_shape, layout, batch=SHAPE[0], length=SHAPE[1],
                  d_model=SHAPE[2])
    x = r.constant(x_value, NAMES)
    y = fn(x, dim, r.context)
    [dx] = mtf.gradients([mtf.reduce_sum(y * r.constant(c_value, NAMES))], [x])
    return r.run([y, dx])


def tf_gradient(plain, axis, x_value, c_value):
  with tf.Graph().as_default():
    x = tf.constant(x_value, tf.float32)
    [dx] = tf.gradients(tf.reduce_sum(plain(x, axis) * c_value), [x])
    with tf.Session() as session:
      return session.run(dx)


@pytest.mark.parametrize("mesh_shape,layout", [("", ""), ("model:2", "batch:model")])
@pytest.mark.parametrize("dim", ["d_model", "length"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_values_and_gradients_match_the_plain_formulas(name, dim, mesh_shape,
                                                             layout):
  fn, numpy_fn, plain = CASES[name]
  x_value = 2.0 * rng(0).randn(*SHAPE).astype(np.float32)
  c_value = rng(1).randn(*SHAPE).astype(np.float32)
  y, dx = mtf_value_and_gradient(fn, dim, x_value, c_value, mesh_shape, layout)
  np.testing.assert_allclose(y, numpy_fn(x_value, AXES[dim]), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dx, tf_gradient(plain, AXES[dim], x_value, c_value),
                             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["softmax", "normalize"])
def test_a_split_dimension_falls_back_to_mtf_reductions(name):
  fn, numpy_fn, plain = CASES[name]
  x_value = rng(2).randn(*SHAPE).astype(np.float32)
  c_value = rng(3).randn(*SHAPE).astype(np.float32)
  y, dx = mtf_value_and_gradient(fn, "d_model", x_value, c_value, "model:2",
                                 "d_model:model")
  np.testing.assert_allclose(y, numpy_fn(x_value, 2), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dx, tf_gradient(plain, 2, x_value, c_value),
                             rtol=1e-4, atol=1e-5)


def jit_compiled_ops(mode, inside_tpu_computation):
  """Names of the TF ops a lowered fused.gelu marks for XLA compilation."""

  def lowered_gelu():
    r = MtfRunner(mode=mode, batch=SHAPE[0], length=SHAPE[1], d_model=SHAPE[2])
    x = mtf.import_tf_tensor(r.mesh, tf.zeros(SHAPE), mtf.Shape(r.dims(NAMES)))
    y = fused.gelu(x, r.context)
    impl = mtf.placement_mesh_impl.PlacementMeshImpl(mtf.Shape([]), mtf.LayoutRules([]),
                                                     [""])
    return mtf.Lowering(r.graph, {r.mesh: impl}).export_to_tf_tensor(y)

  with tf.Graph().as_default() as graph:
    if inside_tpu_computation:
      tf.tpu.rewrite(lowered_gelu)  # builds the TPU computation; nothing runs
    else:
      lowered_gelu()
    return [op.name for op in graph.get_operations() if "_XlaCompile" in op.node_def.attr]


def test_gelu_is_jit_compiled_when_training_on_cpu_only():
  assert any(name.startswith("gelu/") for name in jit_compiled_ops(TRAIN, False))
  assert jit_compiled_ops(PREDICT, False) == []  # per-byte sampling steps
  assert jit_compiled_ops(TRAIN, True) == []  # XLA compiles the TPU program anyway
