"""The project's model_fn built where TPUEstimator builds it on a Cloud TPU: inside the
replicated TPU loop, on a SIMD mesh from a real v3-8 device assignment (on CPU; nothing
runs). What a TPU job needs from the graph is checked there: checkpoint ops the session
can fetch and feed, exports SimdMeshImpl can make, nothing a TPU cannot compile."""
from absl import flags
import gin
import pytest

from mtf_compat import mtf, tf
# pylint: disable=g-direct-tensorflow-import
from tensorflow.python.ops import summary_ops_v2
from tests import tpu_testing
from trainer import config
from trainer.model_fn import make_model_fn
from trainer.run import Run

BATCH, LENGTH = 8, 16
TINY_V3_8 = ["GPT.num_layers = 1", "GPT.d_model = 32", "Attention.heads = 2",
             "run.batch_size = %d" % BATCH, "run.sequence_length = %d" % LENGTH]
# Ops XLA cannot compile for a TPU: Python callbacks; strings are checked by dtype.
HOST_ONLY_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


@pytest.fixture(autouse=True)
def tpu_run_settings():
  was_parsed = flags.FLAGS.is_parsed()
  if not was_parsed:  # mtf's SIMD mesh reads absl flags, which the CLI parses
    flags.FLAGS.mark_as_parsed()
  yield
  gin.clear_config()
  if not was_parsed:
    flags.FLAGS.unparse_flags()


def settings():
  config.parse(["gin/models/transformer.gin", "gin/layouts/v3_8.gin"], TINY_V3_8)
  return Run()


def build(mode, hooks=None, sample=False, model_dir="/tmp/unused-model-dir"):
  """Builds the model_fn in `mode` inside the TPU loop of a v3-8; returns
  (graph, spec)."""
  context = tpu_testing.FakeTPUContext("v3_8")
  model_fn = make_model_fn(settings(), model_dir, hooks)
  params = {"context": context, "batch_size": BATCH, "sample_length": 4,
            "temperature": 1.0, "top_k": 0, "seed": 3}
  captured = {}
  with tf.Graph().as_default() as graph:
    tpu_testing.create_global_step(graph)

    def step():
      inputs, second = tpu_testing.infeed([[BATCH, LENGTH], [BATCH, LENGTH]],
                                          [tf.int32, tf.int32])
      if sample:
        features = {"inputs": inputs, "prompt_length": second[:, 0]}
      else:
        features = {"inputs": inputs, "targets": second}
      spec = model_fn(features, None, mode, params)
      captured["spec"] = spec
      if mode == tf.estimator.ModeKeys.TRAIN:
        with tf.control_dependencies([spec.train_op]):
          return tf.identity(spec.loss)
      if mode == tf.estimator.ModeKeys.EVAL:
        return tf.identity(spec.loss)
      return tf.add_n([tf.reduce_sum(tf.cast(p, tf.float32))
                       for p in spec.predictions.values()])

    tpu_testing.build_in_tpu_loop(step, context)
  return graph, captured["spec"]


def test_checkpoint_ops_are_fetchable_and_feedable_inside_the_tpu_loop():
  graph, spec = build(tf.estimator.ModeKeys.TRAIN)
  with graph.as_default():
    saver_def = tf.get_collection(tf.GraphKeys.SAVERS)[0].saver_def
    save = graph.get_tensor_by_name(saver_def.save_tensor_name)
    filename = graph.get_tensor_by_name(saver_def.filename_tensor_name)
    restore = graph.get_operation_by_name(saver_def.restore_op_name)
    assert graph.is_fetchable(save) and graph.is_fetchable(restore)
    assert graph.is_feedable(filename)  # "save/filename may not be fed" on TPU before
    hook_types = [type(h).__name__ for h in spec.training_hooks]
    assert hook_types == ["MtfRestoreHook", "CheckpointSaverHook"]
    saver_hook = spec.training_hooks[-1]
    # pylint: disable=protected-access
    [listener] = saver_hook._listeners
    assert isinstance(listener, mtf.MtfCheckpointSaverListener)
    assert graph.is_fetchable(listener._op)  # slices -> masters before each save
    restore_hook = spec.training_hooks[0]
    restore_hook.begin()  # builds the masters -> slices copy, as the session does
    assert graph.is_fetchable(restore_hook._op)


def test_score_and_sample_export_only_replicated_tensors_from_the_simd_mesh():
  # SimdMeshImpl.export_to_tf_tensor raises on a tensor laid out over the mesh (batch
  # over `data`); the scores and the bytes come out whole.
  _, score = build(tf.estimator.ModeKeys.PREDICT)
  assert score.predictions["log2_probs"].shape.as_list() == [BATCH, LENGTH]
  _, sample = build(tf.estimator.ModeKeys.PREDICT, sample=True)
  assert sample.predictions["generated"].shape.as_list() == [BATCH, 4]


@pytest.mark.parametrize("mode,sample", [
    (tf.estimator.ModeKeys.TRAIN, False), (tf.estimator.ModeKeys.EVAL, False),
    (tf.estimator.ModeKeys.PREDICT, False), (tf.estimator.ModeKeys.PREDICT, True)])
def test_nothing_inside_the_tpu_computation_is_an_op_a_tpu_cannot_compile(mode, sample):
  graph, _ = build(mode, sample=sample)
  inside = tpu_testing.ops_inside_tpu_computation(graph)
  assert len(inside) > 100  # the model really is inside the TPU computation
  for op in inside:
    assert op.type not in HOST_ONLY_OPS, op.name
    for t in list(op.outputs) + list(op.inputs):
      assert t.dtype != tf.string, (op.name, op.type)


def test_metrics_reach_the_host_through_the_host_call_not_session_hooks(tmp_path):
  recorded = []

  class Recorder(tf.estimator.SessionRunHook):
    def record(self, values):
      recorded.append(values)

  graph, spec = build(tf.estimator.ModeKeys.TRAIN, hooks=lambda tensors: [Recorder()],
                      model_dir=str(tmp_path))
  # No session hook fetches a tensor of the TPU loop; the host_call carries them.
  assert not any(isinstance(h, Recorder) for h in spec.training_hooks)
  fn, args = spec.host_call
  assert [a.shape.as_list() for a in args] == [[1]] * len(args)
  del graph
  with tf.Graph().as_default():  # the host side, run apart from the TPU ops
    # The host gets each argument from the outfeed with one row per core.
    outfeed = [tf.placeholder(a.dtype, [8]) for a in args]
    host_ops = fn(*outfeed)
    # step, then summaries.RECORDED: loss, cross_entropy, z_loss, balance_loss,
    # grad_norm, learning_rate, skipped_steps, finite.
    rows = [[7] * 8, [2.5] * 8, [2.25] * 8, [0.25] * 8, [0.125] * 8, [0.75] * 8,
            [1e-3] * 8, [1] * 8, [1] * 8]
    with tf.Session() as session:
      session.run(summary_ops_v2.summary_writer_initializer_op())  # as TPUEstimator
      session.run(host_ops, dict(zip(outfeed, rows)))
  assert recorded == [{"step": 7, "loss": 2.5, "cross_entropy": 2.25, "z_loss": 0.25,
                       "balance_loss": 0.125,
                       "grad_norm": 0.75,
                       "learning_rate": pytest.approx(1e-3), "skipped_steps": 1.0,
                       "finite": 1.0}]
