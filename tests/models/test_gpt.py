"""The byte-level GPT (Radford et al. 2019: pre-norm blocks, learned position embedding)
against numpy, causal, equal across mesh layouts, and its depth-scaled init."""
import gin
import numpy as np
import pytest

from layers.feed_forward import FeedForward
from models.gpt import GPT
from mtf_compat import tf
from tests import numpy_reference as ref
from tests.mtf_testing import MtfRunner, rng

NUM_LAYERS = 2


def gpt_loss(tokens, mesh_shape="", layout="", d_model=16):
  """(logits, loss, variables) of a 2-layer GPT on `tokens` [batch, length + 1]."""
  with tf.Graph().as_default():
    tf.set_random_seed(7)
    b, n = tokens.shape[0], tokens.shape[1] - 1
    r = MtfRunner(mesh_shape, layout, batch=b, length=n, d_model=d_model)
    inputs = r.constant(tokens[:, :-1], ["batch", "length"], tf.int32)
    targets = r.constant(tokens[:, 1:], ["batch", "length"], tf.int32)
    model = GPT(num_layers=NUM_LAYERS, d_model=d_model)
    logits = model.logits(inputs, r.context)
    loss = model.loss(logits, targets, r.context)
    logits_value, loss_value = r.run([logits, loss])
    values = {v.name: r.variable_value(v) for v in r.graph.all_variables}
  return logits_value, loss_value, values


def test_gpt_forward_matches_numpy_reference():
  tokens = rng(0).randint(0, 256, (2, 7))
  logits, loss, v = gpt_loss(tokens)
  expected = ref.gpt_logits(tokens[:, :-1], v, NUM_LAYERS)
  np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(loss, ref.cross_entropy(expected, tokens[:, 1:]),
                             rtol=1e-5)


def test_gpt_logits_ignore_future_bytes():
  tokens = rng(1).randint(0, 256, (2, 9))
  logits, _, _ = gpt_loss(tokens)
  for i in (0, 4, 6):
    perturbed = tokens.copy()
    perturbed[:, i + 1:-1] = (perturbed[:, i + 1:-1] + 17) % 256
    logits_perturbed, _, _ = gpt_loss(perturbed)
    np.testing.assert_array_equal(logits[:, :i + 1], logits_perturbed[:, :i + 1])
    assert not np.allclose(logits[:, i + 1:], logits_perturbed[:, i + 1:])


@pytest.mark.parametrize("mesh_shape,layout", [
    ("data:2,model:2", "batch:data,heads:model,d_ff:model"),
    ("model:4", "heads:model,d_ff:model,vocab:model"),
])
def test_gpt_loss_is_equal_across_mesh_layouts(mesh_shape, layout):
  tokens = rng(2).randint(0, 256, (4, 9))
  _, single, _ = gpt_loss(tokens)
  _, split, _ = gpt_loss(tokens, mesh_shape, layout)
  np.testing.assert_allclose(split, single, rtol=1e-5)


def weighted_loss(logits, targets, weights):
  """GPT.loss of given logits [batch, length, vocab] with answer weights."""
  with tf.Graph().as_default():
    b, n, v = logits.shape
    r = MtfRunner(batch=b, length=n, vocab=v)
    loss = GPT().loss(r.constant(logits, ["batch", "length", "vocab"]),
                      r.constant(targets, ["batch", "length"], tf.int32), r.context,
                      r.constant(weights, ["batch", "length"]))
    return r.run(loss)


def test_weighted_loss_is_the_cross_entropy_averaged_over_the_weighted_bytes_only():
  logits = rng(3).normal(size=(2, 6, 256)).astype(np.float32)
  targets = rng(4).randint(0, 256, (2, 6))
  weights = np.zeros([2, 6], np.float32)
  weights[0, 2] = weights[1, 4] = weights[1, 5] = 1.0
  loss = weighted_loss(logits, targets, weights)
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  per_byte = -np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
  np.testing.assert_allclose(loss, per_byte[weights == 1].mean(), rtol=1e-5)
  changed = targets.copy()
  changed[weights == 0] = (changed[weights == 0] + 1) % 256  # bytes the loss ignores
  np.testing.assert_allclose(weighted_loss(logits, changed, weights), loss, rtol=1e-6)
@pytest.mark.parametrize("channel_mixer,branches_per_block", [
    (FeedForward, 2), (None, 1)], ids=["two_branches", "one_branch"])
def test_depth_scaling_divides_output_projections_by_sqrt_of_residual_branches(
    channel_mixer, branches_per_block):
  """GPT-2 (Radford et al. 2019): output projections of residual branches start at
  1/√N of the others' scale, N the model's number of residual branches (2L for
  attention + feed-forward blocks, L when a block has no channel mixer). Checked with
  the orthogonal init, where the scale is exact: WᵀW = I / N for output projections,
  WᵀW = I for the input projections beside them."""
  num_layers = 3
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    r = MtfRunner(batch=1, length=4, d_model=16, num_layers=num_layers)
    gin.bind_parameter("Initialization.kind", "orthogonal")
    gin.bind_parameter("Initialization.scale_outputs_by_depth", True)
    try:
      model = GPT(num_layers=num_layers, d_model=16, channel_mixer=channel_mixer)
      model.logits(r.constant(np.zeros([1, 4]), ["batch", "length"], tf.int32),
                   r.context)
    finally:
      gin.clear_config()
    r.lower()
    values = {v.name: r.variable_value(v) for v in r.graph.trainable_variables}
  branches = num_layers * branches_per_block
  outputs = [n for n in values if n.endswith("/mixer/o")]
  inputs = [n for n in values if n.endswith("/mixer/q")]
  assert len(outputs) == len(inputs) == num_layers
  for name in outputs:  # [heads, d_head, d_model]: fan-in heads·d_head = 16 = fan-out
    m = values[name].reshape(16, 16)
    np.testing.assert_allclose(m.T @ m, np.eye(16) / branches, atol=1e-5, err_msg=name)
  for name in inputs:  # [d_model, heads, d_head]
    m = values[name].reshape(16, 16)
    np.testing.assert_allclose(m.T @ m, np.eye(16), atol=1e-5, err_msg=name)
  if channel_mixer is not None:
    for name in [n for n in values if n.endswith("channel_mixing/mixer/out")]:
      m = values[name]  # [d_ff, d_model]: tall, orthonormal columns times 1/√N
      np.testing.assert_allclose(m.T @ m, np.eye(16) / branches, atol=1e-5)
