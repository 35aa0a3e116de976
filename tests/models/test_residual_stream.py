"""GPT.residual_stream: the reversible streams' inverted backward passes give plain
autodiff's gradients for every gin model, rebuild the blocks' inputs from their outputs,
keep the activations of one block whatever the depth, and give the same loss and
gradients on a 2x2 mesh; 'standard' is the network it was."""
import dataclasses
import functools
import os

import gin
import numpy as np
import pytest

from layers import variables
from layers.context import Context, TRAIN
from layers.norm import LayerNorm
from models.gpt import GPT
from mtf_compat import mtf, tf
from tests import cli_testing as cli
from tests.models import test_sampling
from tests.models.test_gin_models import MODEL_FILES, parse_model_file
from tests.mtf_testing import MtfRunner, rng
from tests.trainer.test_scale import DP2_MP2, assert_same_step, first_step
from trainer import config, model_summary
from trainer.run import Run

BATCH, LENGTH, D_MODEL = 2, 8, 32
STREAMS = ("revnet", "momentum")
REZERO_VALUE = 0.5  # ReZero's α starts at 0, which would make every branch vanish
# The mixtures of experts add a balance loss inside their branches, which the inverted
# streams refuse to train (test_a_layer_loss_under_an_inverted_stream_is_one_line).
REVERSIBLE_MODEL_FILES = [m for m in MODEL_FILES if not m.endswith("_moe")]


@pytest.fixture(autouse=True)
def clear_gin_config():
  yield
  gin.clear_config()


def old_logits(model, tokens, context):
  """GPT.logits as it was before residual streams: x ← block(x) for each block."""
  d_model, vocab = context.dims["d_model"], context.dims["vocab"]
  init = variables.normal_initializer(model.embedding_stddev)
  embedding = variables.variable(context, "byte_embedding", [vocab, d_model], init,
                                 variables.EMBEDDING)
  x = mtf.gather(embedding, tokens, vocab)
  if model.positions == "learned":
    x += variables.variable(context, "position_embedding", [context.length, d_model],
                            init, variables.EMBEDDING)
  context.residual_branches = model.num_layers * (1 if model.channel_mixer is None
                                                  else 2)
  for i in range(model.num_layers):
    context.layer_index = i
    with tf.variable_scope("block_%d" % i):
      x = model.residual()(x, model.token_mixer(), context, "token_mixing")
      if model.channel_mixer is not None:
        x = model.residual()(x, model.channel_mixer(), context, "channel_mixing")
  with tf.variable_scope("final_norm"):
    x = LayerNorm()(x, context)
  w = variables.weight(context, "logits", [d_model, vocab], ["d_model"],
                       role=variables.OUTPUT)
  return mtf.einsum([x, w], reduced_dims=[d_model])


@dataclasses.dataclass
class Streams:
  losses: dict       # (stream, inverted) -> loss
  gradients: dict    # (stream, inverted) -> {variable name: gradient}
  first_inputs: dict    # stream -> the first branch's two stream inputs
  last_outputs: dict    # stream -> the last branch's two stream outputs
  rebuilt_inputs: dict  # stream -> the same, rebuilt from the outputs
  standard_logits: np.ndarray
  old_logits: np.ndarray


@functools.lru_cache(maxsize=None)
def streams(model_file):
  """Builds the model file's GPT (2 blocks) on one set of variables under every stream,
  inverted and left to autodiff, and evaluates losses, gradients and rebuilt inputs."""
  parse_model_file(model_file)
  tokens = rng(0).randint(0, 256, (BATCH, LENGTH + 1))
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    r = MtfRunner(batch=BATCH, length=LENGTH, d_model=D_MODEL)
    shape = mtf.Shape(r.dims(["batch", "length"]))
    inputs, targets = [mtf.import_tf_tensor(r.mesh, tf.constant(t), shape)
                       for t in (tokens[:, :-1], tokens[:, 1:])]

    def context():
      return Context(r.mesh, TRAIN, r.context.dims, num_layers=2)

    standard = GPT().logits(inputs, context())
    old = old_logits(GPT(), inputs, context())
    fetches = {"standard": standard, "old": old}
    for stream in STREAMS:
      for inverted in (True, False):
        model = GPT(residual_stream=stream, invert_in_backward=inverted)
        first_op = len(r.graph.operations)
        loss = model.loss(model.logits(inputs, context()), targets, context())
        xs = [v.outputs[0] for v in r.graph.trainable_variables]
        fetches["%s/%s" % (stream, inverted)] = [loss] + mtf.gradients([loss], xs)
        if inverted:
          # The first branch's inputs are (x1, x1 rebuilt, x2, x2 rebuilt); the
          # "gradients" of the rebuilt ones are the inputs the backward pass rebuilt.
          first = next(op for op in r.graph.operations[first_op:]
                       if isinstance(op, mtf.CustomGradientOperation))
          last = [op for op in r.graph.operations[first_op:]
                  if isinstance(op, mtf.CustomGradientOperation)][-1]
          fetches[stream + "/first"] = [first.inputs[0], first.inputs[2]]
          fetches[stream + "/last"] = [last.outputs[0], last.outputs[2]]
          fetches[stream + "/rebuilt"] = mtf.gradients(
              [loss], xs + [first.inputs[1], first.inputs[3]])[-2:]
    names = [v.name for v in r.graph.trainable_variables]
    r.lower()
    rezero = [v for v in r.graph.trainable_variables
              if variables.record_of(v).role == variables.REZERO]
    r.session.run([tf.assign(v.get_master(), REZERO_VALUE) for v in rezero])
    r.session.run(r.lowering.copy_masters_to_slices())
    values = r.run(fetches)
  runs = [(s, inverted) for s in STREAMS for inverted in (True, False)]
  return Streams(
      losses={k: values["%s/%s" % k][0] for k in runs},
      gradients={k: dict(zip(names, values["%s/%s" % k][1:])) for k in runs},
      first_inputs={s: values[s + "/first"] for s in STREAMS},
      last_outputs={s: values[s + "/last"] for s in STREAMS},
      rebuilt_inputs={s: values[s + "/rebuilt"] for s in STREAMS},
      standard_logits=values["standard"], old_logits=values["old"])


@pytest.mark.parametrize("model_file", REVERSIBLE_MODEL_FILES)
@pytest.mark.parametrize("stream", STREAMS)
def test_inverted_backward_gives_the_gradients_of_plain_autodiff(model_file, stream):
  built = streams(model_file)
  inverted, plain = built.gradients[stream, True], built.gradients[stream, False]
  np.testing.assert_allclose(built.losses[stream, True], built.losses[stream, False],
                             rtol=1e-6)
  assert inverted.keys() == plain.keys() and len(plain) > 5
  for name, g in plain.items():
    scale = np.abs(g).max()
    assert scale > 0, name
    np.testing.assert_allclose(inverted[name], g, rtol=1e-4, atol=1e-4 * scale,
                               err_msg=name)


@pytest.mark.parametrize("model_file", REVERSIBLE_MODEL_FILES)
@pytest.mark.parametrize("stream", STREAMS)
def test_backward_pass_rebuilds_the_first_block_inputs(model_file, stream):
  built = streams(model_file)
  first, rebuilt = built.first_inputs[stream], built.rebuilt_inputs[stream]
  scale = max(np.abs(x).max() for x in first + built.last_outputs[stream])
  for actual, again in zip(first, rebuilt):
    np.testing.assert_allclose(again, actual, rtol=0, atol=1e-5 * scale)
  if stream == "momentum":  # v_0 = 0
    assert not np.any(first[1])


@pytest.mark.parametrize("model_file", REVERSIBLE_MODEL_FILES)
def test_standard_stream_is_the_network_it_was(model_file):
  built = streams(model_file)
  if model_file == "hyena":  # two builds of one Hyena graph differ by ~1e-8 (its FFTs)
    np.testing.assert_allclose(built.standard_logits, built.old_logits, rtol=0,
                               atol=1e-6 * np.abs(built.old_logits).max())
  else:
    np.testing.assert_array_equal(built.standard_logits, built.old_logits)


@pytest.mark.parametrize("model_file", ["transformer", "gmlp"])
@pytest.mark.parametrize("stream", STREAMS)
def test_decoding_a_reversible_stream_gives_the_whole_windows_logits(model_file, stream):
  test_sampling.test_decoding_position_by_position_gives_the_whole_windows_logits(
      model_file, ["GPT.residual_stream = '%s'" % stream])


def kept_bytes(stream, num_layers, model_file):
  """model_summary's kept activation bytes of one batch of 4 x 16 bytes, counted on the
  forward and gradient graph alone (no optimizer)."""
  bindings = ["GPT.num_layers = %d" % num_layers, "GPT.d_model = 32"]
  bindings.append("GPT.recompute_blocks = True" if stream == "recompute"
                  else "GPT.residual_stream = '%s'" % stream)
  config.parse(["gin/models/%s.gin" % model_file], bindings)
  graph, forward_op_count, model = model_summary.forward_graph(
      Run(batch_size=4, sequence_length=16))
  graphs = model_summary.Graphs(graph, forward_op_count, None, model, None)
  return sum(t.shape.size * 4 for t in model_summary.kept_tensors(graphs))


@pytest.mark.parametrize("model_file", ["transformer", "gmlp"])
def test_reversible_streams_keep_the_same_activations_at_every_depth(model_file):
  standard = [kept_bytes("standard", n, model_file) for n in (2, 4)]
  recompute = [kept_bytes("recompute", n, model_file) for n in (2, 4)]
  assert standard[1] > 1.5 * standard[0]
  assert recompute[1] < standard[1] / 2
  for stream in STREAMS:
    kept = [kept_bytes(stream, n, model_file) for n in (2, 4)]
    assert kept[0] == kept[1] < recompute[1]


@pytest.mark.parametrize("stream", STREAMS)
def test_reversible_streams_give_the_same_step_on_a_2x2_mesh(stream):
  binding = ["GPT.residual_stream = '%s'" % stream]
  single = first_step("transformer", bindings=binding)
  assert "CustomGradientOperation" in single[2]
  assert_same_step(first_step("transformer", *DP2_MP2, bindings=binding), single)


def test_unknown_residual_stream_is_one_line_and_writes_nothing(tmp_path):
  model_dir = tmp_path / "run"
  result = cli.train(model_dir, "GPT.residual_stream = 'reversible'", check=False)
  assert result.returncode == 2
  assert result.stderr.strip().count("\n") == 0, result.stderr
  assert "GPT.residual_stream" in result.stderr and "'revnet'" in result.stderr
  assert not os.path.exists(model_dir)


@pytest.mark.parametrize("stream", STREAMS)
def test_a_layer_loss_under_an_inverted_stream_is_one_line(stream, tmp_path):
  """A mixture of experts' balance loss, made inside an inverted branch, would lose its
  gradient in the custom backward pass: training refuses it, naming the way out."""
  model_dir = tmp_path / "run"
  result = cli.train(model_dir, "GPT.residual_stream = '%s'" % stream,
                     gin_file="gin/models/transformer_moe.gin", check=False)
  assert result.returncode == 2
  assert result.stderr.strip().count("\n") == 0, result.stderr
  assert "cannot train a layer that adds its own loss" in result.stderr
  assert "GPT.residual_stream = 'standard'" in result.stderr


@pytest.mark.parametrize("experiment", ["mixer_32big", "mixer_32ctx"])
def test_the_threads_full_scale_runs_use_the_revnet_stream(experiment):
  config.parse(["gin/experiments/thread/%s.gin" % experiment])
  model = GPT()
  assert (model.residual_stream, model.num_layers) == ("revnet", 32)
