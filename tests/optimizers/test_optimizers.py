"""SM3 and Adam against numpy over several steps, and what they share: weight decay by
role, learning-rate multipliers, the `apply_if` guard, float32 state and its size."""
import collections

import numpy as np
import pytest

from layers import variables
from mtf_compat import mtf, tf
from optimizers import SM3, Adam, optimizer_state_bytes
from tests.mtf_testing import MtfRunner, rng

SIZES = {"a": 3, "b": 4, "c": 5, "rows": 64, "cols": 256}
Spec = collections.namedtuple("Spec", "name dims role fan_in lr_multiplier",
                              defaults=(variables.WEIGHT, (), 1.0))
RANKS_0_TO_3 = [Spec("s", ()), Spec("v", ("a",)), Spec("m", ("a", "b")),
                Spec("t", ("a", "b", "c"))]
STEP_SCALES = (1.0, 0.3, 2.0, 0.5, 1.5)  # varying scales exercise SM3's min and max


def shape_of(spec):
  return tuple(SIZES[n] for n in spec.dims)


def random_problem(specs, steps=4, seed=0):
  r = rng(seed)
  inits = [r.randn(*shape_of(s)) for s in specs]
  grads = [[STEP_SCALES[k] * r.randn(*shape_of(s)) for s in specs]
           for k in range(steps)]
  return inits, grads


def run_steps(optimizer_class, specs, inits, grads, lr=0.1, lr_as_mtf_tensor=False,
              apply_ifs=None, mesh_shape="", layout="", activation_dtype=tf.float32,
              **optimizer_kwargs):
  """Applies grads[k][i] to variable i at step k (guarded by apply_ifs[k] if given).

  Returns (history, optimizer): history[k] = (weights after step k, {slot name: value}).
  """
  with tf.Graph().as_default():
    r = MtfRunner(mesh_shape, layout)
    r.context.variable_dtype = mtf.VariableDType(tf.float32, tf.float32,
                                                 activation_dtype)
    var_ops, placeholders, mtf_grads = [], [], []
    for spec, init in zip(specs, inits):
      shape = mtf.Shape([mtf.Dimension(n, SIZES[n]) for n in spec.dims])
      v = variables.variable(r.context, spec.name, shape, tf.constant_initializer(init),
                             spec.role, spec.fan_in, spec.lr_multiplier)
      var_ops.append(v.operation)
      placeholders.append(tf.placeholder(activation_dtype, shape.to_integer_list))
      mtf_grads.append(mtf.import_tf_tensor(r.mesh, placeholders[-1], shape))
    if lr_as_mtf_tensor:
      lr = mtf.import_fully_replicated(r.mesh, tf.constant(lr, tf.float32),
                                       mtf.Shape([]))
    optimizer = optimizer_class(learning_rate=lr, **optimizer_kwargs)
    apply_if = None
    if apply_ifs is not None:
      apply_if_placeholder = tf.placeholder(tf.bool, [])
      apply_if = mtf.import_fully_replicated(r.mesh, apply_if_placeholder,
                                             mtf.Shape([]))
    update_ops = optimizer.apply_grads(mtf_grads, var_ops, apply_if=apply_if)
    r.lower()
    train_op = tf.group([r.tf_op(op) for op in update_ops])
    history = []
    for k, step_grads in enumerate(grads):
      feed = dict(zip(placeholders, step_grads))
      if apply_ifs is not None:
        feed[apply_if_placeholder] = apply_ifs[k]
      r.session.run(train_op, feed)
      weights = [r.variable_value(v) for v in var_ops]
      slots = {s.name: r.variable_value(s) for s in optimizer.slot_variables}
      history.append((weights, slots))
  return history, optimizer


def decays(spec):
  return spec.role in (variables.WEIGHT, variables.OUTPUT) and len(spec.dims) >= 2


def sm3_reference(w, grads, lr, momentum, nesterov, weight_decay=0.0, decay=False):
  """SM3-II (Anil et al. 2019, "Memory-efficient adaptive optimization", Algorithm
  SM3-II) in float64, with heavy-ball (Nesterov) momentum m ← μm + u, step u + μm.
  Returns (w, accumulators, m)."""
  w = np.array(w, np.float64)
  accs = [np.zeros(w.shape)] if w.ndim <= 1 else [np.zeros(n) for n in w.shape]
  m = np.zeros(w.shape)
  for g in grads:
    if w.ndim <= 1:
      nu = accs[0] + g ** 2
      accs = [nu]
    else:
      cover = np.full(w.shape, np.inf)
      for i, acc in enumerate(accs):
        broadcast_shape = [n if j == i else 1 for j, n in enumerate(w.shape)]
        cover = np.minimum(cover, acc.reshape(broadcast_shape))
      nu = cover + g ** 2
      accs = [nu.max(axis=tuple(j for j in range(w.ndim) if j != i))
              for i in range(w.ndim)]
    u = np.divide(g, np.sqrt(nu), out=np.zeros(w.shape), where=nu > 0)
    m = momentum * m + u
    step = u + momentum * m if nesterov else m
    if decay:
      step = step + weight_decay * w
    w = w - lr * step
  return w, accs, m


def sm3_ema_reference(w, grads, lr, momentum):
  """SM3-II with the SM3 paper's (Anil et al. 2019) and google-research's momentum, an
  EMA: m ← μ m + (1 − μ) u, Nesterov step (1 − μ) u + μ m, float64. Returns w."""
  w = np.array(w, np.float64)
  accs = [np.zeros(n) for n in w.shape]
  m = np.zeros(w.shape)
  for g in grads:
    cover = np.minimum(accs[0][:, None], accs[1][None, :])
    nu = cover + g ** 2
    accs = [nu.max(axis=1), nu.max(axis=0)]
    u = np.divide(g, np.sqrt(nu), out=np.zeros(w.shape), where=nu > 0)
    m = momentum * m + (1 - momentum) * u
    w = w - lr * ((1 - momentum) * u + momentum * m)
  return w


def adam_reference(w, grads, lr, beta1, beta2, epsilon, weight_decay=0.0, decay=False):
  """Bias-corrected Adam (Kingma & Ba 2015, Algorithm 1) with decoupled weight decay
  (Loshchilov & Hutter 2019, AdamW), float64. Returns (w, m, v)."""
  w = np.array(w, np.float64)
  m, v = np.zeros(w.shape), np.zeros(w.shape)
  for t, g in enumerate(grads, 1):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g ** 2
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
    update = m_hat / (np.sqrt(v_hat) + epsilon)
    if decay:
      update = update + weight_decay * w
    w = w - lr * update
  return w, m, v


def close(actual, expected, rtol=1e-5, atol=1e-6):
  np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def check_sm3(specs, momentum, nesterov, weight_decay=0.0, lr=0.1, **run_kwargs):
  inits, grads = random_problem(specs)
  history, _ = run_steps(SM3, specs, inits, grads, lr=lr, momentum=momentum,
                         nesterov=nesterov, weight_decay=weight_decay, **run_kwargs)
  weights, slots = history[-1]
  for i, spec in enumerate(specs):
    w, accs, m = sm3_reference(inits[i], [g[i] for g in grads], lr * spec.lr_multiplier,
                               momentum, nesterov, weight_decay, decays(spec))
    close(weights[i], w)
    if len(spec.dims) <= 1:
      close(slots[spec.name + "/sm3_accumulator"], accs[0])
    else:
      for dim, acc in zip(spec.dims, accs):
        close(slots[spec.name + "/sm3_accumulator_" + dim], acc)
    if momentum:
      close(slots[spec.name + "/sm3_momentum"], m)
  return slots


def check_adam(specs, beta1=0.9, beta2=0.999, epsilon=1e-8, weight_decay=0.0, lr=0.1,
               **run_kwargs):
  inits, grads = random_problem(specs)
  history, _ = run_steps(Adam, specs, inits, grads, lr=lr, beta1=beta1, beta2=beta2,
                         epsilon=epsilon, weight_decay=weight_decay, **run_kwargs)
  weights, slots = history[-1]
  for i, spec in enumerate(specs):
    w, m, v = adam_reference(inits[i], [g[i] for g in grads], lr * spec.lr_multiplier,
                             beta1, beta2, epsilon, weight_decay, decays(spec))
    # float32 bias correction (1 − β2^t) is good to ~1e-4 relative at β2 = 0.999
    close(weights[i], w, rtol=1e-4, atol=1e-5)
    close(slots[spec.name + "/adam_m"], m)
    close(slots[spec.name + "/adam_v"], v)
    close(slots[spec.name + "/adam_step"], len(grads))


# SM3

def test_sm3_matches_numpy_ranks_0_to_3_with_nesterov():
  check_sm3(RANKS_0_TO_3, momentum=0.9, nesterov=True)


def test_sm3_matches_numpy_ranks_0_to_3_without_momentum_and_keeps_no_momentum_slot():
  slots = check_sm3(RANKS_0_TO_3, momentum=0.0, nesterov=True)
  assert not [name for name in slots if "momentum" in name]


def test_sm3_matches_numpy_ranks_0_to_3_with_heavy_ball_momentum():
  check_sm3(RANKS_0_TO_3, momentum=0.5, nesterov=False)


def test_sm3_matches_numpy_with_dims_split_across_devices():
  check_sm3([Spec("m", ("b", "c")), Spec("t", ("a", "b", "c"))], momentum=0.9,
            nesterov=True, mesh_shape="all:2", layout="b:all")


def test_sm3_update_is_zero_where_nu_is_zero():
  specs = [Spec("v", ("a",)), Spec("m", ("a", "b")), Spec("t", ("a", "b", "c"))]
  inits, grads = random_problem(specs)
  for step in grads:  # from the start: v[1], row m[0, :] and slice t[:, 2, :] get 0
    step[0][1] = 0.0
    step[1][0, :] = 0.0
    step[2][:, 2, :] = 0.0
  history, _ = run_steps(SM3, specs, inits, grads, lr=0.1, momentum=0.9)
  weights, _ = history[-1]
  for i in range(len(specs)):
    assert np.all(np.isfinite(weights[i]))
    close(weights[i], sm3_reference(inits[i], [g[i] for g in grads], 0.1, 0.9, True)[0])
  assert weights[0][1] == np.float32(inits[0][1])
  np.testing.assert_array_equal(weights[1][0], inits[1][0].astype(np.float32))
  np.testing.assert_array_equal(weights[2][:, 2], inits[2][:, 2].astype(np.float32))


# Adam

def test_adam_matches_numpy_ranks_0_to_3():
  check_adam(RANKS_0_TO_3)


def test_adam_matches_numpy_with_pangu_betas_and_mtf_learning_rate():
  check_adam(RANKS_0_TO_3, beta1=0.9, beta2=0.95, lr=0.05, lr_as_mtf_tensor=True)


def test_sm3_heavy_ball_at_lr_times_1_minus_mu_equals_the_papers_ema_form():
  """The SM3 docstring's mapping: heavy-ball momentum at lr (1 − μ)·η takes the steps
  of the paper's EMA momentum at η (0.01 here is the paper's 0.1 at μ = 0.9)."""
  specs = [Spec("m", ("a", "b"))]
  inits, grads = random_problem(specs, steps=5)
  history, _ = run_steps(SM3, specs, inits, grads, lr=0.01, momentum=0.9,
                         nesterov=True)
  expected = sm3_ema_reference(inits[0], [g[0] for g in grads], lr=0.1, momentum=0.9)
  close(history[-1][0][0], expected)
  # ... and not those of the EMA form at the same lr, which are 10× smaller.
  same_lr = sm3_ema_reference(inits[0], [g[0] for g in grads], lr=0.01, momentum=0.9)
  assert not np.allclose(history[-1][0][0], same_lr, rtol=1e-3)


# Shared behaviour

ROLE_SPECS = [
    Spec("weight", ("a", "b"), variables.WEIGHT, ("a",)),
    Spec("output", ("a", "b", "c"), variables.OUTPUT, ("a", "b")),
    Spec("weight_vector", ("a",), variables.WEIGHT),
    Spec("embedding", ("a", "b"), variables.EMBEDDING),
    Spec("norm", ("a",), variables.NORM),
    Spec("bias", ("b",), variables.BIAS),
    Spec("rezero", (), variables.REZERO),
    Spec("seq_map", ("a", "b"), variables.SEQ_MAP, ("b",)),
]


def test_sm3_weight_decay_applies_only_to_rank2_weights_and_outputs():
  check_sm3(ROLE_SPECS, momentum=0.9, nesterov=True, weight_decay=0.3)


def test_adam_weight_decay_applies_only_to_rank2_weights_and_outputs():
  check_adam(ROLE_SPECS, weight_decay=0.3)


def test_weight_decay_changes_only_the_decayed_roles():
  inits, grads = random_problem(ROLE_SPECS)
  plain, _ = run_steps(Adam, ROLE_SPECS, inits, grads)
  decayed, _ = run_steps(Adam, ROLE_SPECS, inits, grads, weight_decay=0.3)
  for spec, w_plain, w_decayed in zip(ROLE_SPECS, plain[-1][0], decayed[-1][0]):
    assert np.array_equal(w_plain, w_decayed) != decays(spec), spec.name


LR_SPECS = [Spec("rezero", (), variables.REZERO, (), 10.0),
            Spec("weight", ("a", "b"), variables.WEIGHT, ("a",), 0.5)]


def test_sm3_learning_rate_multiplier_scales_the_step():
  check_sm3(LR_SPECS, momentum=0.9, nesterov=True, weight_decay=0.1, lr=0.01)


def test_adam_learning_rate_multiplier_scales_the_step():
  check_adam(LR_SPECS, weight_decay=0.1, lr=0.01)


@pytest.mark.parametrize("optimizer_class", [SM3, Adam])
def test_apply_if_false_keeps_weights_and_slots_even_with_nan_gradients(
    optimizer_class):
  specs = [Spec("v", ("a",)), Spec("m", ("a", "b")), Spec("t", ("a", "b", "c"))]
  inits, grads = random_problem(specs, steps=4)
  grads[2] = [np.full_like(g, np.nan) for g in grads[2]]
  history, _ = run_steps(optimizer_class, specs, inits, grads,
                         apply_ifs=[True, True, False, True])
  (weights_before, slots_before), (weights_skipped, slots_skipped) = history[1:3]
  for before, after in zip(weights_before, weights_skipped):
    np.testing.assert_array_equal(after, before)
  assert slots_skipped.keys() == slots_before.keys()
  for name, value in slots_before.items():
    np.testing.assert_array_equal(slots_skipped[name], value, err_msg=name)
  # apply_if=True steps are ordinary updates: the run equals one without the NaN step.
  unguarded, _ = run_steps(optimizer_class, specs, inits, grads[:2] + grads[3:])
  for guarded_w, plain_w in zip(history[-1][0], unguarded[-1][0]):
    np.testing.assert_array_equal(guarded_w, plain_w)
  for name, value in unguarded[-1][1].items():
    np.testing.assert_array_equal(history[-1][1][name], value, err_msg=name)


@pytest.mark.parametrize("optimizer_class", [SM3, Adam])
def test_slots_are_float32_when_activations_are_bfloat16(optimizer_class):
  specs = [Spec("v", ("a",)), Spec("m", ("a", "b"))]
  inits, grads = random_problem(specs, steps=1)
  history, optimizer = run_steps(optimizer_class, specs, inits, grads,
                                 activation_dtype=tf.bfloat16)
  assert optimizer.slot_variables
  for slot in optimizer.slot_variables:
    assert (slot.master_dtype, slot.slice_dtype, slot.activation_dtype) == (
        tf.float32, tf.float32, tf.float32), slot.name
    assert not slot.trainable
    assert history[-1][1][slot.name].dtype == np.float32


def test_sm3_accumulator_keeps_growing_with_bfloat16_activations():
  spec = Spec("v", ("a",))
  g = np.array(0.01, tf.bfloat16.as_numpy_dtype).astype(np.float64)
  grads = [[np.full(shape_of(spec), 1.0 if k == 0 else g)] for k in range(4)]
  history, _ = run_steps(SM3, [spec], [np.ones(shape_of(spec))], grads,
                         activation_dtype=tf.bfloat16)
  # 1 + 3 g² (≈ 1.0003); a bfloat16 accumulator would have stayed at 1.
  np.testing.assert_allclose(history[-1][1]["v/sm3_accumulator"], 1 + 3 * g ** 2,
                             rtol=1e-6)


def test_sm3_state_is_accumulators_per_dim_plus_momentum():
  _, optimizer = run_steps(SM3, [Spec("w", ("rows", "cols"))], [np.zeros([64, 256])],
                           [], momentum=0.9)
  assert optimizer.state_bytes() == (64 + 256 + 64 * 256) * 4
  assert optimizer_state_bytes(optimizer) == optimizer.state_bytes()


def test_sm3_without_momentum_state_is_accumulators_only():
  _, optimizer = run_steps(SM3, [Spec("w", ("rows", "cols"))], [np.zeros([64, 256])],
                           [], momentum=0.0)
  assert optimizer.state_bytes() == (64 + 256) * 4


def test_adam_state_is_two_full_slots_and_a_step_counter():
  _, optimizer = run_steps(Adam, [Spec("w", ("rows", "cols"))], [np.zeros([64, 256])],
                           [])
  assert optimizer.state_bytes() == 2 * 64 * 256 * 4 + 4
