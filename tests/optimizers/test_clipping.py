"""Global-norm clipping and adaptive gradient clipping (AGC) against numpy."""
import numpy as np
import pytest

from layers import variables
from layers.mixer import MLPMixer
from mtf_compat import mtf, tf
from optimizers import GradientClipping, adaptive_clip, clip_by_global_norm, global_norm
from tests.mtf_testing import MtfRunner, rng

SIZES = {"a": 3, "b": 4, "c": 2}


def build(r, name, dims, value, role=variables.WEIGHT, fan_in=()):
  shape = mtf.Shape([mtf.Dimension(n, SIZES[n]) for n in dims])
  var = variables.variable(r.context, name, shape, tf.constant_initializer(value),
                           role, fan_in)
  return var.operation, shape


def clip(fn, specs):
  """specs: (name, dims, weight, grad or None, role, fan_in). Runs
  fn(grads, variables) -> list of grads (or (list, extra)) and returns the values."""
  with tf.Graph().as_default():
    r = MtfRunner()
    var_ops, grads = [], []
    for name, dims, weight, grad, role, fan_in in specs:
      var, shape = build(r, name, dims, weight, role, fan_in)
      var_ops.append(var)
      grads.append(None if grad is None else mtf.import_tf_tensor(
          r.mesh, tf.constant(grad, tf.float32), shape))
    result = fn(grads, var_ops)
    flat = tf.nest.flatten(result)
    values = iter(r.run([t for t in flat if t is not None]))
    return tf.nest.pack_sequence_as(
        result, [None if t is None else next(values) for t in flat])


def np_global_norm(grads):
  return np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads if g is not None))


def np_agc(w, g, fan_in_axes, threshold):
  """Brock et al. per unit: norms over the fan-in axes, one unit per other index."""
  axes = tuple(fan_in_axes)
  w_norm = np.maximum(np.sqrt(np.sum(w ** 2, axis=axes, keepdims=True)), 1e-3)
  g_norm = np.sqrt(np.sum(g ** 2, axis=axes, keepdims=True))
  too_big = g_norm / w_norm > threshold
  return np.where(too_big, threshold * w_norm / np.where(too_big, g_norm, 1) * g, g)


def grad_specs(seed=0):
  r = rng(seed)
  return [("m", ("a", "b"), r.randn(3, 4), 0.5 * r.randn(3, 4), variables.WEIGHT,
           ("a",)),
          ("unused", ("b",), r.randn(4), None, variables.BIAS, ()),
          ("v", ("c",), r.randn(2), 0.3 * r.randn(2), variables.NORM, ())]


@pytest.mark.parametrize("clip_norm", [0.3, 1.0, 3.0])
def test_clip_by_global_norm_scales_by_min_of_1_and_c_over_norm(clip_norm):
  specs = grad_specs()
  grads = [s[3] for s in specs]
  norm = np_global_norm(grads)
  assert 1.0 < norm < 3.0  # c = 0.3 and 1 clip, c = 3 leaves the gradients alone
  clipped, measured = clip(
      lambda g, v: (clip_by_global_norm(g, clip_norm), global_norm(g)), specs)
  np.testing.assert_allclose(measured, norm, rtol=1e-6)
  scale = min(1.0, clip_norm / norm)
  np.testing.assert_allclose(clipped[0], grads[0] * scale, rtol=1e-6)
  assert clipped[1] is None
  np.testing.assert_allclose(clipped[2], grads[2] * scale, rtol=1e-6)
  np.testing.assert_allclose(np_global_norm(clipped), min(norm, clip_norm), rtol=1e-6)


def test_clip_by_global_norm_keeps_zero_gradients_finite():
  specs = [("m", ("a", "b"), np.ones([3, 4]), np.zeros([3, 4]), variables.WEIGHT, ())]
  (clipped,) = clip(lambda g, v: clip_by_global_norm(g, 0.5), specs)
  np.testing.assert_array_equal(clipped, np.zeros([3, 4]))


def test_adaptive_clip_clips_only_the_units_over_the_threshold():
  threshold = 0.1
  w = np.array([[1.0, 0.0], [2.0, 0.0], [2.0, 0.0]])  # [a (fan-in), c (units)]
  g = np.array([[0.3, 5e-5], [0.0, 0.0], [0.4, 0.0]])
  # unit 0: ‖G‖/‖W‖ = 0.5/3 > 0.1, clipped to norm 0.1 · 3 = 0.3.
  # unit 1: ‖W‖ = 0 floors to 1e-3 and ‖G‖/1e-3 = 0.05 ≤ 0.1, so it is kept.
  specs = [("m", ("a", "c"), w, g, variables.WEIGHT, ("a",))]
  (clipped,) = clip(lambda grads, v: adaptive_clip(grads, v, threshold), specs)
  expected = np_agc(w, g, [0], threshold)
  np.testing.assert_allclose(clipped, expected, rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(np.linalg.norm(clipped[:, 0]), 0.3, rtol=1e-6)
  np.testing.assert_allclose(clipped[:, 1], g[:, 1], rtol=1e-6)


def test_adaptive_clip_uses_the_non_fan_in_dims_as_units():
  r = rng(1)
  threshold = 0.05
  w = r.randn(3, 4, 2)  # fan-in (a, c), units b: like [heads, d_head] -> d_model
  g = r.randn(3, 4, 2) * np.array([0.01, 1.0, 0.02, 3.0])[None, :, None]
  specs = [("o", ("a", "b", "c"), w, g, variables.WEIGHT, ("a", "c"))]
  (clipped,) = clip(lambda grads, v: adaptive_clip(grads, v, threshold), specs)
  expected = np_agc(w, g, [0, 2], threshold)
  ratios = (np.sqrt((g ** 2).sum((0, 2))) / np.sqrt((w ** 2).sum((0, 2))))
  assert (ratios > threshold).any() and (ratios <= threshold).any()
  np.testing.assert_allclose(clipped, expected, rtol=1e-5, atol=1e-8)


def test_adaptive_clip_exempts_the_output_role_by_default():
  w = np.full([3, 4], 0.01)
  g = np.full([3, 4], 5.0)
  specs = [("logits", ("a", "b"), w, g, variables.OUTPUT, ("a",))]
  (kept,) = clip(lambda grads, v: adaptive_clip(grads, v, 0.01), specs)
  np.testing.assert_array_equal(kept, g)
  (clipped,) = clip(lambda grads, v: adaptive_clip(grads, v, 0.01, exempt_roles=()),
                    specs)
  np.testing.assert_allclose(clipped, np_agc(w, g, [0], 0.01), rtol=1e-6)


def test_adaptive_clip_treats_scalars_vectors_and_unrecorded_fan_in_as_one_unit():
  r = rng(2)
  threshold = 0.2
  specs = [("s", (), np.array(0.5), np.array(4.0), variables.REZERO, ()),
           ("v", ("b",), r.randn(4), 3 * r.randn(4), variables.NORM, ()),
           ("m", ("a", "b"), r.randn(3, 4), 3 * r.randn(3, 4), variables.WEIGHT, ())]
  clipped = clip(lambda grads, v: adaptive_clip(grads, v, threshold), specs)
  for (_, dims, w, g, _, _), c in zip(specs, clipped):
    axes = list(range(len(dims)))
    np.testing.assert_allclose(c, np_agc(w, g, axes, threshold), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(c), threshold * np.linalg.norm(w),
                               rtol=1e-6)


def test_gradient_clipping_runs_agc_then_global_norm_and_reports_the_norm_before():
  specs = grad_specs(3)
  grads = [s[3] for s in specs]
  clipping = GradientClipping(global_norm=0.5, agc=0.2)
  clipped, norm = clip(clipping, specs)
  np.testing.assert_allclose(norm, np_global_norm(grads), rtol=1e-6)
  agc = [np_agc(specs[0][2], grads[0], [0], 0.2), None,
         np_agc(specs[2][2], grads[2], [0], 0.2)]
  scale = min(1.0, 0.5 / np_global_norm(agc))
  np.testing.assert_allclose(clipped[0], agc[0] * scale, rtol=1e-5)
  assert clipped[1] is None
  np.testing.assert_allclose(clipped[2], agc[2] * scale, rtol=1e-5)


def test_gradient_clipping_without_thresholds_returns_the_gradients_and_their_norm():
  specs = grad_specs(4)
  clipped, norm = clip(GradientClipping(), specs)
  np.testing.assert_allclose(norm, np_global_norm([s[3] for s in specs]), rtol=1e-6)
  np.testing.assert_allclose(clipped[0], specs[0][3], rtol=1e-6)
  np.testing.assert_allclose(clipped[2], specs[2][3], rtol=1e-6)


def test_gradient_clipping_rejects_non_positive_thresholds():
  with pytest.raises(ValueError, match="global_norm"):
    GradientClipping(global_norm=0.0)
  with pytest.raises(ValueError, match="agc"):
    GradientClipping(agc=-1.0)


def test_adaptive_clip_gives_an_embedding_one_unit_per_row():
  """Brock et al. 2021 clip per output unit: an embedding [rows, d_model] has one unit
  per row (the vector a byte or position looks up), not one for the whole table."""
  r = rng(5)
  threshold = 0.3
  w = r.randn(3, 4)
  g = r.randn(3, 4) * np.array([0.01, 0.1, 3.0])[:, None]
  ratios = np.linalg.norm(g, axis=1) / np.linalg.norm(w, axis=1)
  assert (ratios > threshold).any() and (ratios <= threshold).any()
  specs = [("e", ("a", "b"), w, g, variables.EMBEDDING, ())]
  (clipped,) = clip(lambda grads, v: adaptive_clip(grads, v, threshold), specs)
  np.testing.assert_allclose(clipped, np_agc(w, g, [1], threshold), rtol=1e-6)


def test_adaptive_clip_of_a_real_seq_map_takes_unit_norms_over_live_entries():
  """A causal MLP-Mixer's map W [heads, length, memory_length]: unit i is row i of a
  head, and only its entries j ≤ i act. Its masked entries keep their initial noise, so
  ‖W_i‖ over the whole row (Brock et al.'s unit norm taken naively) overstates the
  weight; AGC must use ‖(W ⊙ M)_i‖."""
  length, heads = 16, 2
  thresholds = [0.3, 1.0, 3.0, 10.0]
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    r = MtfRunner(batch=2, length=length, d_model=8)
    names = ["batch", "length", "d_model"]
    x = r.constant(rng(6).randn(2, length, 8), names)
    y = MLPMixer(heads=heads)(x, r.context)
    [w1] = [v for v in r.graph.trainable_variables if v.name.endswith("w1")]
    assert variables.record_of(w1).role == variables.SEQ_MAP
    [g] = mtf.gradients([mtf.reduce_sum(y * r.constant(rng(7).randn(2, length, 8),
                                                        names))], [w1.outputs[0]])
    clipped = [adaptive_clip([g], [w1], t)[0] for t in thresholds]
    w, g, *clipped = r.run([w1.outputs[0], g] + clipped)
  live = np.tril(np.ones([length, length]))
  assert w.shape == (heads, length, length)
  np.testing.assert_array_equal(g * (1 - live), 0.0)  # dead entries get no gradient
  dead_inflation = np.linalg.norm(w, axis=-1) / np.linalg.norm(w * live, axis=-1)
  assert dead_inflation.mean() > 1.5
  discriminating = 0
  for t, c in zip(thresholds, clipped):
    expected = np_agc(w * live, g, [2], t)
    np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-12)
    discriminating += not np.allclose(np_agc(w, g, [2], t), expected, rtol=1e-3)
  assert discriminating
