"""Memory-saving settings change nothing but memory: microbatching and recomputed blocks
give the same loss and gradients; bfloat16 activations train with float32 state."""
import gin
import numpy as np
import pytest

from layers.context import TRAIN
from mtf_compat import mtf, tf
from tests import cli_testing as cli
from tests.mtf_testing import rng
from trainer import config
from trainer import mesh as mesh_lib
from trainer.model_fn import build_model, train_graph
from trainer.run import Run
import optimizers

BATCH, LENGTH = 8, 16
TINY_MODEL = ["GPT.num_layers = 2", "GPT.d_model = 32", "Attention.heads = 2"]
DP2_MP2 = ("data:2,model:2", "batch:data,heads:model,d_ff:model,vocab:model")


@pytest.fixture(autouse=True)
def clear_gin_config():
  yield
  gin.clear_config()


class RecordingOptimizer:
  """Stands in for run.optimizer: keeps the gradients train_graph hands it."""
  received = None

  def __init__(self, learning_rate):
    self.learning_rate = learning_rate

  def apply_grads(self, grads, variables, apply_if=None):
    del apply_if
    RecordingOptimizer.received = (list(grads), list(variables))
    return []


def first_step(model_file="transformer", mesh_shape="", layout="", bindings=(),
               **run_settings):
  """(loss, {variable: gradient}, mtf op types) of train_graph's first step."""
  config.parse(["gin/models/%s.gin" % model_file], TINY_MODEL + list(bindings))
  settings = Run(batch_size=BATCH, sequence_length=LENGTH, mesh_shape=mesh_shape,
                 layout_rules=layout, optimizer=RecordingOptimizer, **run_settings)
  shape, rules = mesh_lib.parse(mesh_shape, layout)
  tokens = rng(3).randint(0, 256, (BATCH, LENGTH + 1))
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    graph = mtf.Graph()
    mesh = mtf.Mesh(graph, "mesh")
    model, context, token_shape = build_model(settings, mesh, TRAIN, BATCH)
    inputs, targets = [mtf.import_tf_tensor(mesh, tf.constant(t, tf.int32), token_shape)
                       for t in (tokens[:, :-1], tokens[:, 1:])]
    loss, *_ = train_graph(settings, model, context, inputs, targets,
                           tf.train.get_or_create_global_step())
    grads, variables = RecordingOptimizer.received
    mesh_lib.validate_layout(graph, shape, rules)
    lowering = mtf.Lowering(graph, {mesh: mesh_lib.placement_impl(shape, rules)})
    fetches = [lowering.export_to_tf_tensor(t) for t in [loss] + grads]
    with tf.Session(config=mesh_lib.session_config(shape.size)) as session:
      session.run(tf.global_variables_initializer())
      session.run(lowering.copy_masters_to_slices())
      loss_value, *grad_values = session.run(fetches)
    op_types = {type(op).__name__ for op in graph.operations}
  return (float(loss_value), dict(zip([v.name for v in variables], grad_values)),
          op_types)


def assert_same_step(a, b):
  loss_a, grads_a, _ = a
  loss_b, grads_b, _ = b
  np.testing.assert_allclose(loss_a, loss_b, rtol=1e-5)
  assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
  for name, g in grads_b.items():
    scale = np.abs(g).max()
    assert scale > 0, name
    np.testing.assert_allclose(grads_a[name], g, rtol=1e-5, atol=1e-5 * scale,
                               err_msg=name)


# transformer_moe: its balance loss is per sequence, so microbatches and recomputed
# blocks must give the optimised loss (cross-entropy + balance) and gradients as well.
@pytest.mark.parametrize("model_file", ["transformer", "mixer", "transformer_moe"])
def test_four_microbatches_give_the_same_loss_and_gradients_as_one_batch(model_file):
  whole = first_step(model_file)
  micro = first_step(model_file, microbatches=4)
  assert "WhileLoopOperation" in micro[2] and "WhileLoopOperation" not in whole[2]
  assert_same_step(micro, whole)


def test_microbatches_on_a_2x2_mesh_give_the_same_loss_and_gradients():
  # 8 examples, 4 microbatches of 2, each split over data:2.
  assert_same_step(first_step("transformer", *DP2_MP2, microbatches=4),
                   first_step("transformer"))


@pytest.mark.parametrize("model_file", ["transformer", "gmlp", "transformer_moe"])
def test_recomputed_blocks_give_the_same_loss_and_gradients(model_file):
  stored = first_step(model_file)
  recomputed = first_step(model_file, bindings=["GPT.recompute_blocks = True"])
  assert ("CustomGradientOperation" in recomputed[2]
          and "CustomGradientOperation" not in stored[2])
  assert_same_step(recomputed, stored)


@pytest.mark.parametrize("optimizer", [optimizers.Adam, optimizers.SM3])
def test_bfloat16_activations_keep_weights_and_optimizer_state_float32(optimizer):
  config.parse(["gin/models/transformer.gin"], TINY_MODEL)
  settings = Run(batch_size=BATCH, sequence_length=LENGTH, optimizer=optimizer,
                 activation_dtype="bfloat16")
  with tf.Graph().as_default():
    graph = mtf.Graph()
    mesh = mtf.Mesh(graph, "mesh")
    model, context, token_shape = build_model(settings, mesh, TRAIN, BATCH)
    tokens = mtf.zeros(mesh, token_shape, tf.int32)
    *_, opt = train_graph(settings, model, context, tokens, tokens,
                          tf.train.get_or_create_global_step())
    dtypes = {t.dtype for op in graph.operations for t in op.outputs}
    slots = set(opt.slot_variables)
    assert slots and tf.bfloat16 in dtypes
    for v in graph.all_variables:
      assert v.master_dtype == tf.float32 and v.slice_dtype == tf.float32, v.name
      expected = tf.float32 if v in slots else tf.bfloat16
      assert v.activation_dtype == expected, v.name


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adam", "sm3"])
def test_bfloat16_training_lowers_the_loss_with_float32_checkpoints(optimizer,
                                                                    tmp_path):
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  run = tmp_path / "run"
  cli.mtfzoo("train", "--gin_file", "gin/models/transformer.gin",
             "--gin_file", "gin/optimizers/%s.gin" % optimizer, "--model_dir", run,
             *cli.gin_params("run.corpus = '%s'" % corpus, "run.train_steps = 30",
                             "run.activation_dtype = 'bfloat16'",
                             "run.steps_per_checkpoint = 1000",
                             "learning_rate_schedule.base = 1e-2"))
  losses = [r["loss"] for r in cli.metrics(run)]
  assert len(losses) == 30 and all(np.isfinite(losses))
  assert np.mean(losses[-5:]) < losses[0] - 2.0  # from ≈ ln 256 = 5.5 nats

  checkpoint = tf.train.latest_checkpoint(str(run))
  assert checkpoint.endswith("-30")
  names = {name for name, _ in tf.train.list_variables(checkpoint)}
  counters = {"global_step", "nonfinite_steps"}
  # A slot is saved as <variable>/<slot name>.
  slots = {n for n in names if any(n.startswith(m + "/") for m in names)}
  masters = names - slots - counters
  assert {"logits", "byte_embedding"} <= masters
  assert len(slots) >= len(masters)  # Adam: m, v, step; SM3: accumulators, momentum
  for name in masters | slots:
    value = tf.train.load_variable(checkpoint, name)
    assert value.dtype == np.float32, (name, value.dtype)
