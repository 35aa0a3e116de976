"""Mesh layouts: the same losses on every CPU layout, clear errors for bad layouts, and
the TPU pieces (SIMD mesh, variable placement, RunConfig) built on CPU."""
import math
import os
import subprocess
import sys

from absl import flags
import gin
import numpy as np
import pytest

from layers.context import TRAIN
from mtf_compat import mtf, tf
from tests import cli_testing as cli
from tests.tpu_testing import FakeTPUContext
from trainer import config
from trainer import estimator
from trainer import mesh as mesh_lib
from trainer.errors import UserError
from trainer.model_fn import build_model, train_graph
from trainer.run import Run

MODELS = ("transformer", "mixer", "gmlp", "shared_attention")
# Every model on the 2x2 mesh, which splits both the batch and the weights; the one-axis
# meshes once (test_gin_models checks every model file's step on a 2x2 mesh too).
SPLIT_RUNS = [(m, "dp2_mp2") for m in MODELS] + [("transformer", "dp2"),
                                                  ("transformer", "mp2")]
STEPS = 3
MODEL_FILES = sorted(f[:-len(".gin")] for f in os.listdir(os.path.join(cli.REPO, "gin",
                                                                         "models"))
                     if f.endswith(".gin"))


@pytest.fixture(autouse=True)
def clear_gin_config():
  yield
  gin.clear_config()


# --------------------------------------------------------------------------------------
# Same seed, same losses on every layout.


def run_name(model, layout):
  return "%s_%s" % (model, layout)


@pytest.fixture(scope="module")
def layout_runs(tmp_path_factory):
  """Trains every model of MODELS on one device and as SPLIT_RUNS say, STEPS steps."""
  base = tmp_path_factory.mktemp("layouts")
  corpus = cli.write_corpus(base / "corpus.txt")
  runs = []
  for model, layout in [(m, "single") for m in MODELS] + SPLIT_RUNS:
    argv = ["train", "--gin_file", "gin/models/%s.gin" % model,
            "--gin_file", "gin/layouts/%s.gin" % layout,
            "--model_dir", str(base / run_name(model, layout))]
    argv += cli.gin_params("run.corpus = '%s'" % corpus,
                           "run.data_dir = '%s'" % (base / "data"),  # shards once
                           "run.train_steps = %d" % STEPS,
                           "run.steps_per_checkpoint = 1000", "run.eval_steps = 1")
    runs.append(argv)
  results = cli.mtfzoo_many(runs, base / "results.json")  # one TensorFlow import
  assert [r["code"] for r in results] == [0] * len(runs)
  return base


@pytest.mark.slow
@pytest.mark.parametrize("model,layout", SPLIT_RUNS)
def test_same_seed_gives_the_same_losses_on_every_layout(model, layout, layout_runs):
  single = cli.metrics(layout_runs / run_name(model, "single"))
  split_dir = layout_runs / run_name(model, layout)
  split = cli.metrics(split_dir)
  assert [r["step"] for r in single] == [r["step"] for r in split] == [1, 2, 3]
  # The run really used the layout's mesh.
  mesh_shape = {"dp2": "data:2", "mp2": "model:2", "dp2_mp2": "data:2,model:2"}[layout]
  assert "run.mesh_shape = '%s'" % mesh_shape in (split_dir / "config.gin").read_text()
  np.testing.assert_allclose([r["loss"] for r in split], [r["loss"] for r in single],
                             rtol=1e-5)
  np.testing.assert_allclose([r["grad_norm"] for r in split],
                             [r["grad_norm"] for r in single], rtol=1e-5)
  # The updates did something: the same numbers are not just three initial losses.
  assert single[0]["loss"] != single[-1]["loss"]


MOE_LAYOUTS = ("single", "dp2_ep2", "dp2_mp2_ep")


@pytest.mark.slow
def test_a_mixture_of_experts_trains_alike_on_the_expert_parallel_layouts(tmp_path):
  """transformer_moe.gin for STEPS steps under each of MOE_LAYOUTS: the same losses,
  gradient norms and balance losses; the balance loss is logged on its own and counted
  in `loss` (cross-entropy + balance), never in `bpc`."""
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  runs = []
  for layout in MOE_LAYOUTS:
    runs.append(["train", "--gin_file", "gin/models/transformer_moe.gin",
                 "--gin_file", "gin/layouts/%s.gin" % layout,
                 "--model_dir", str(tmp_path / layout)]
                + cli.gin_params("run.corpus = '%s'" % corpus,
                                 "run.data_dir = '%s'" % (tmp_path / "data"),
                                 "run.train_steps = %d" % STEPS,
                                 "run.steps_per_checkpoint = 1000", "run.eval_steps = 1"))
  results = cli.mtfzoo_many(runs, tmp_path / "results.json")
  assert [r["code"] for r in results] == [0, 0, 0]
  single = cli.metrics(tmp_path / "single")
  for r in single:
    assert r["balance_loss"] > 0  # MoEFeedForward.balance_loss = 0.01 times E²·mean(..)
    assert r["bpc"] * math.log(2) + r["balance_loss"] == pytest.approx(r["loss"],
                                                                       rel=1e-5)
  for layout in MOE_LAYOUTS[1:]:
    split = cli.metrics(tmp_path / layout)
    assert [r["step"] for r in split] == [1, 2, 3]
    for name in ("loss", "grad_norm", "balance_loss"):
      np.testing.assert_allclose([r[name] for r in split], [r[name] for r in single],
                                 rtol=1e-5, err_msg="%s %s" % (layout, name))


# --------------------------------------------------------------------------------------
# Layouts a user can get wrong (tests/trainer/test_errors.py covers a layout that does
# not divide and a layout naming an axis the mesh lacks).

BAD_LAYOUTS = {
    "two weight dims on one mesh axis": (
        "model:2", "d_ff:model,d_model:model",
        ["d_model", "d_ff", "mesh axis model"]),
    "batch and heads on one mesh axis": (
        "model:2", "batch:model,heads:model", ["batch", "heads", "mesh axis model"]),
    "mesh axis of size 0": ("data:0", "batch:data", ["run.mesh_shape", "data"]),
}


@pytest.mark.parametrize("case", sorted(BAD_LAYOUTS))
def test_bad_layout_is_one_line_exit_2_naming_the_culprit(case, tmp_path):
  mesh_shape, layout, named = BAD_LAYOUTS[case]
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  result = cli.train(tmp_path / "run", "run.corpus = '%s'" % corpus,
                     "run.mesh_shape = '%s'" % mesh_shape,
                     "run.layout_rules = '%s'" % layout, check=False)
  lines = [l for l in result.stderr.splitlines() if l.strip()]
  assert result.returncode == 2, result.stderr[-2000:]
  assert len(lines) == 1, result.stderr[-2000:]
  for text in named:
    assert text in lines[0]
  assert not os.path.exists(tmp_path / "run")


def test_mesh_larger_than_the_visible_gpus_is_a_user_error(monkeypatch):
  monkeypatch.setattr(tf.config, "list_physical_devices",
                      lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
  with pytest.raises(UserError, match="run.mesh_shape has 4 devices but 1 GPUs"):
    mesh_lib.local_devices(4)
  assert mesh_lib.local_devices(1) == ["/device:GPU:0"]


# --------------------------------------------------------------------------------------
# TPU pieces, built on CPU.

LAYOUT_FILE = {name: "gin/layouts/%s.gin" % name
               for name in ("v3_8", "v3_32", "v4_8", "v4_32", "v5e_8")}


@pytest.fixture
def absl_flags():
  """mtf's SIMD mesh reads absl flags (logical_cores_per_chip), which the CLI parses."""
  was_parsed = flags.FLAGS.is_parsed()
  if not was_parsed:
    flags.FLAGS.mark_as_parsed()
  yield
  if not was_parsed:
    flags.FLAGS.unparse_flags()


def tpu_settings(layout, model_file="transformer"):
  """The layout file over a model file at the quickstart's batch and context."""
  config.parse(["gin/models/%s.gin" % model_file, LAYOUT_FILE[layout]],
               ["run.batch_size = 32", "run.sequence_length = 128"])
  return Run()


def test_the_simd_mesh_module_imports_with_the_shim():
  # pylint: disable=g-import-not-at-top
  import mesh_tensorflow.simd_mesh_impl as simd
  from tensorflow.python.framework import ops
  from tensorflow.python.framework import tensor_conversion_registry as registry
  assert simd.SimdMeshImpl.__module__ == "mesh_tensorflow.simd_mesh_impl"
  assert (ops.register_tensor_conversion_function
          is registry.register_tensor_conversion_function)


def test_mesh_tensorflow_does_not_import_without_the_shim():
  result = subprocess.run(
      [sys.executable, "-c", "import mesh_tensorflow"], capture_output=True, text=True,
      cwd=cli.REPO, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode != 0
  assert "register_tensor_conversion_function" in result.stderr


@pytest.mark.parametrize("layout,mesh_shape,slices", [
    ("v3_8", [4, 2], [8, 128, 2, 32]), ("v3_32", [8, 4], [4, 128, 1, 32]),
    ("v4_8", [2, 2], [16, 128, 2, 32]), ("v4_32", [4, 4], [8, 128, 1, 32]),
    ("v5e_8", [4, 2], [8, 128, 2, 32])])
def test_simd_mesh_of_a_tpu_layout(layout, mesh_shape, slices, absl_flags):
  # v4 and v5e topologies have one core per chip, where mesh-tf 0.1.21's default
  # (two per chip) gives no mapping at all.
  settings = tpu_settings(layout)
  assert settings.use_tpu and settings.activation_dtype == "bfloat16"
  shape, rules = mesh_lib.parse(settings.mesh_shape, settings.layout_rules)
  impl = mesh_lib.simd_impl(shape, rules, FakeTPUContext(layout))
  import mesh_tensorflow.simd_mesh_impl as simd  # pylint: disable=g-import-not-at-top
  assert isinstance(impl, simd.SimdMeshImpl)
  assert impl.shape == shape and shape.to_integer_list == mesh_shape
  cores = int(np.prod(mesh_shape))
  assert sorted(impl.l2p(i) for i in range(cores)) == list(range(cores))
  # Attention's [batch 32, length 128, heads 4, d_head 32] on each core.
  dims = [mtf.Dimension("batch", 32), mtf.Dimension("length", 128),
          mtf.Dimension("heads", 4), mtf.Dimension("d_head", 32)]
  assert impl.slice_shape(mtf.Shape(dims)) == slices


def test_simd_mesh_larger_than_the_tpu_is_a_user_error(absl_flags):
  settings = tpu_settings("v3_32")
  shape, rules = mesh_lib.parse(settings.mesh_shape, settings.layout_rules)
  with pytest.raises(UserError, match="'data:8,model:4' has 32 devices but the TPU has "
                     "8 cores"):
    mesh_lib.simd_impl(shape, rules, FakeTPUContext("v3_8"))


# v5e_8.gin binds what v3_8.gin binds (a v5e-8 has the 4x2 mesh of a v3-8 on other
# chips; their SIMD meshes differ and are tested above): the graph check of v3_8 holds
# for both while this test holds.
def test_v5e_8_binds_what_v3_8_binds():
  assert tpu_settings("v5e_8") == tpu_settings("v3_8")
  gin.clear_config()
  assert tpu_settings("v5e_8") != tpu_settings("v4_8")  # the comparison can fail


@pytest.mark.parametrize("layout", sorted(set(LAYOUT_FILE) - {"v5e_8"}))
def test_every_model_file_builds_a_valid_training_graph_for_a_tpu_layout(layout):
  for model_file in MODEL_FILES:
    settings = tpu_settings(layout, model_file)
    shape, rules = mesh_lib.parse(settings.mesh_shape, settings.layout_rules)
    with tf.Graph().as_default():
      graph = mtf.Graph()
      mesh = mtf.Mesh(graph, "mesh",
                      mesh_lib.tpu_variable_placer(FakeTPUContext(layout)))
      model, context, token_shape = build_model(settings, mesh, TRAIN,
                                                settings.batch_size)
      tokens = mtf.zeros(mesh, token_shape, tf.int32)
      train_graph(settings, model, context, tokens, tokens,
                  tf.train.get_or_create_global_step())
      mesh_lib.validate_layout(graph, shape, rules)  # raises UserError if invalid
      split = {d.name for op in graph.operations for t in op.outputs
               for d in t.shape.dims if rules.tensor_dimension_to_mesh_axis(d, shape)
               is not None}
      assert {"batch", "vocab"} <= split, model_file
      assert context.activation_dtype == tf.bfloat16
      for v in graph.all_variables:
        assert v.master_dtype == tf.float32 and v.slice_dtype == tf.float32, v.name


def test_tpu_variable_placer_balances_masters_over_the_hosts():
  context = FakeTPUContext("v3_32")
  assert context.num_hosts == 4
  with tf.Graph().as_default():
    mesh = mtf.Mesh(mtf.Graph(), "mesh", mesh_lib.tpu_variable_placer(context))
    sizes = [40, 10, 20, 30, 5]
    devices = [mtf.get_variable(mesh, "v%d" % i, [mtf.Dimension("a", n)])
               .operation.get_master().device for i, n in enumerate(sizes)]
  # Each variable goes to the host holding the fewest bytes so far; host 0 starts with
  # 300 MB for each of the 32 replicas' TPU programs (and feeds the input), so these
  # small variables fill hosts 1-3 first.
  assert devices == ["/job:worker/task:%d/device:CPU:0" % h for h in (1, 2, 3, 2, 3)]
  assert mesh_lib.HOST0_BYTES_PER_REPLICA == 300 * 1000000


def test_run_config_on_tpu_needs_tpu_flag():
  settings = Run(use_tpu=True, mesh_shape="data:4,model:2", layout_rules="batch:data")
  for flags_given in (None, {"tpu": None, "zone": "z", "project": "p"}):
    with pytest.raises(UserError, match="--tpu"):
      estimator.run_config(settings, "/tmp/unused", tpu_flags=flags_given)


def test_tpu_cluster_passes_name_zone_and_project(monkeypatch):
  calls = []

  class Resolver:
    def __init__(self, *args, **kwargs):
      calls.append((args, kwargs))

    def master(self):
      return "grpc://10.0.0.3:8470"

  monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", Resolver)
  resolver = estimator.tpu_cluster({"tpu": "my-tpu", "zone": "europe-west4-a",
                                    "project": "proj"})
  assert isinstance(resolver, Resolver)
  assert calls == [(("my-tpu",), {"zone": "europe-west4-a", "project": "proj"})]


# The pinned stack has no Google API client, which TF needs to look a TPU name up.
def test_tpu_name_without_the_google_api_client_is_a_user_error():
  with pytest.raises(UserError, match="--tpu 'my-tpu': Missing runtime dependency"):
    estimator.tpu_cluster({"tpu": "my-tpu", "zone": "z", "project": "p"})


def test_run_config_and_estimator_for_a_v3_8_at_a_grpc_address():
  # A grpc:// address needs no Cloud API look-up, so the real resolver is built offline.
  settings = tpu_settings("v3_8")
  tpu_flags = {"tpu": "grpc://127.0.0.1:8470", "zone": None, "project": None}
  model_dir = "gs://bucket/runs/q"  # a TPU Node reads and writes it itself
  config_ = estimator.run_config(settings, model_dir, tpu_flags=tpu_flags)
  assert config_.master == "grpc://127.0.0.1:8470"
  assert config_.tpu_config.iterations_per_loop == 100
  assert config_.tpu_config.num_cores_per_replica == 1
  assert (config_.tpu_config.per_host_input_for_training
          == tf.estimator.tpu.InputPipelineConfig.BROADCAST)
  assert config_.save_checkpoints_steps is None
  assert config_.save_checkpoints_secs is None
  # The CPU-only virtual devices are not requested on a TPU; grappler's meta optimizer
  # is off, as in the references (it costs start-up time on a TPU program).
  assert not config_.session_config.device_count
  assert config_.session_config.graph_options.rewrite_options.disable_meta_optimizer
  # The estimator is the TPU one (built, not run: there is no TPU here).
  tpu_estimator = estimator.make_estimator(settings, model_dir, tpu_flags=tpu_flags)
  assert isinstance(tpu_estimator, tf.estimator.tpu.TPUEstimator)
  assert tpu_estimator.config.master == "grpc://127.0.0.1:8470"


def test_run_config_for_a_tpu_vm_is_local():
  # On a TPU VM the TPU is attached to this host: TPUClusterResolver('local'), which
  # needs no Cloud API look-up, and a local or gs:// model_dir.
  settings = tpu_settings("v4_8")
  config_ = estimator.run_config(settings, "/tmp/unused", tpu_flags={"tpu": "local"})
  assert config_.master == ""
  assert config_.session_config.graph_options.rewrite_options.disable_meta_optimizer
  assert isinstance(estimator.make_estimator(settings, "/tmp/unused",
                                             tpu_flags={"tpu": "local"}),
                    tf.estimator.tpu.TPUEstimator)


def test_a_local_model_dir_for_a_tpu_node_is_one_line_exit_2(tmp_path):
  result = cli.mtfzoo("train", "--gin_file", "gin/models/transformer.gin",
                      "--gin_file", "gin/layouts/v3_8.gin",
                      "--tpu", "grpc://10.0.0.2:8470", "--model_dir", tmp_path / "run",
                      *cli.gin_params(), check=False)
  lines = [l for l in result.stderr.splitlines() if l.strip()]
  assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
  assert "grpc://10.0.0.2:8470" in lines[0] and "gs://" in lines[0]
  assert not os.path.exists(tmp_path / "run")


def test_a_batch_the_data_axis_does_not_divide_is_one_line_exit_2(tmp_path):
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  result = cli.train(tmp_path / "run", "run.corpus = '%s'" % corpus,
                     "run.batch_size = 6", "run.mesh_shape = 'data:4'",
                     "run.layout_rules = 'batch:data'", check=False)
  lines = [l for l in result.stderr.splitlines() if l.strip()]
  assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
  assert lines[0].startswith("mtfzoo train: layout: dimension batch (size 6)")
  assert "mesh axis data (size 4)" in lines[0]
  assert not os.path.exists(tmp_path / "run")


def test_cpu_thread_pools_use_the_cores_this_process_may_run_on(monkeypatch):
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(96)))

  def pools(settings):
    session = estimator.run_config(settings, "/tmp/unused").session_config
    return (session.intra_op_parallelism_threads, session.inter_op_parallelism_threads)

  assert pools(Run()) == (96, 96)
  assert pools(Run(intra_op_threads=3, inter_op_threads=1)) == (3, 1)


def test_a_topology_mesh_tensorflow_cannot_map_is_a_user_error_naming_it(monkeypatch,
                                                                         absl_flags):
  import mesh_tensorflow.simd_mesh_impl as simd  # pylint: disable=g-import-not-at-top

  def cannot_map(*args, **kwargs):
    raise ValueError("physical and logical shapes must have the same product")

  monkeypatch.setattr(simd, "auto_logical_to_physical_tpu", cannot_map)
  settings = tpu_settings("v4_8")
  with pytest.raises(UserError, match="mesh-tensorflow 0.1.21 cannot lay run.mesh_shape "
                     "'data:2,model:2' over the TPU topology 2x2x1x1"):
    mesh_lib.simd_impl(*settings.layout, FakeTPUContext("v4_8"))
