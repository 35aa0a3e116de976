"""Export: a SavedModel that generates text with plain TensorFlow, and a full .npz."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import gin
import numpy as np
import pytest

from mtf_compat import tf
from tests import cli_testing as cli

LOAD_AND_GENERATE = r"""
import json, os, sys
repo = os.path.realpath(sys.argv[1])
sys.path = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != repo and
            not os.path.exists(os.path.join(p or os.getcwd(), "trainer", "run.py"))]
try:
  import trainer  # noqa: F401
  sys.exit("the project is still importable")
except ImportError:
  pass
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[2]).signatures["serving_default"]
texts = serve(prompt=tf.constant(json.loads(sys.argv[3])))["text"].numpy()
print(json.dumps([t.decode("utf-8", "replace") for t in texts]))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  base = tmp_path_factory.mktemp("export")
  window = b"But, soft! what l"
  text = (b"What light through yonder window breaks? " * 4)[:153] + window
  (base / "corpus.txt").write_bytes(text)
  results = cli.mtfzoo_many(
      [cli.train_argv(base / "run", "run.corpus = '%s'" % (base / "corpus.txt"),
                      "run.train_steps = 4", "run.batch_size = 1"),
       ["export", "--model_dir", base / "run", "--export_dir", base / "saved",
        "--temperature", "0", "--length", "24"]], base / "results.json")
  assert [r["code"] for r in results] == [0, 0], results
  return base


@pytest.mark.slow
def test_saved_model_generates_what_sample_generates_without_the_project(exported):
  prompts = ["ROMEO:", "What light"]
  result = subprocess.run(
      [sys.executable, "-c", LOAD_AND_GENERATE, cli.REPO, exported / "saved",
       json.dumps(prompts)], capture_output=True, text=True, cwd=exported,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 0, result.stderr[-2000:]
  served = json.loads(result.stdout.strip().splitlines()[-1])
  sampled = cli.mtfzoo_many(
      [["sample", "--model_dir", exported / "run", "--prompt", prompt,
        "--temperature", "0", "--length", "24"] for prompt in prompts],
      exported / "sampled.json")
  for prompt, text, result in zip(prompts, served, sampled):
    assert result["code"] == 0, result
    assert result["stdout"] == prompt + text + "\n"


@pytest.mark.slow
def test_npz_holds_every_variable_in_full_and_reproduces_the_checkpoint_loss(exported):
  # The held-out split is one 17-byte window: `eval` with batch 1 is the loss on it.
  bpc = float(cli.mtfzoo("eval", "--model_dir", exported / "run").stdout.split()[-1])
  values = dict(np.load(exported / "saved" / "variables.npz"))
  checkpoint = tf.train.latest_checkpoint(str(exported / "run"))
  for name, shape in tf.train.list_variables(checkpoint):
    assert list(values[name].shape) == list(shape)

  from models.gpt import GPT  # pylint: disable=g-import-not-at-top
  from tests.mtf_testing import MtfRunner  # pylint: disable=g-import-not-at-top
  from trainer import config  # pylint: disable=g-import-not-at-top
  config.parse(base_config=config.saved_config(str(exported / "run")))
  window = np.frombuffer(b"But, soft! what l", np.uint8).astype(np.int32)[None]
  with tf.Graph().as_default():
    r = MtfRunner(batch=1, length=16, d_model=32)
    model = GPT()
    loss = model.loss(model.logits(r.constant(window[:, :-1], ["batch", "length"],
                                              tf.int32), r.context),
                      r.constant(window[:, 1:], ["batch", "length"], tf.int32),
                      r.context)
    r.lower()
    masters = {v.op.name: v for v in tf.global_variables()}
    for v in r.graph.all_variables:
      masters[v.name].load(values[v.name], r.session)
    r.session.run(r.lowering.copy_masters_to_slices())
    npz_bpc = r.run(loss) / np.log(2)
  assert npz_bpc == pytest.approx(bpc, abs=1e-4)


def load_and_generate(saved, prompts, cwd):
  """Runs the SavedModel in a fresh process with plain TF2, without the project."""
  return subprocess.run(
      [sys.executable, "-c", LOAD_AND_GENERATE, cli.REPO, saved, json.dumps(prompts)],
      capture_output=True, text=True, cwd=cwd,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def test_saved_model_loads_in_tf2_without_reference_variable_warnings(exported):
  result = load_and_generate(exported / "saved", ["ROMEO:"], exported)
  assert result.returncode == 0, result.stderr[-2000:]
  # TF2's loader warns once per reference variable ("Unable to create a python object
  # for variable ... because it is a reference variable").
  assert "reference variable" not in result.stderr
  assert "WARNING" not in result.stderr, result.stderr[-2000:]


def test_a_tpu_trained_config_exports_a_cpu_graph_without_tpu_flags(exported, tmp_path):
  # A model_dir as a v3-8 run leaves it: its config.gin ends with the layout's bindings.
  run = tmp_path / "tpu_run"
  shutil.copytree(exported / "run", run)
  layout = open(os.path.join(cli.REPO, "gin", "layouts", "v3_8.gin")).read()
  with open(run / "config.gin", "a") as f:
    f.write("\n" + layout)
  cli.mtfzoo("export", "--model_dir", run, "--export_dir", tmp_path / "saved",
             "--temperature", "0", "--length", "24")
  result = load_and_generate(tmp_path / "saved", ["What light"], tmp_path)
  assert result.returncode == 0, result.stderr[-2000:]
  served = json.loads(result.stdout.strip().splitlines()[-1])
  # The same weights generate the same greedy bytes over the 4x2 mesh of virtual CPUs
  # in bfloat16 as the CPU export does.
  reference = load_and_generate(exported / "saved", ["What light"], exported)
  assert served == json.loads(reference.stdout.strip().splitlines()[-1])


def test_export_dir_is_written_through_tf_io_gfile_only(exported, tmp_path,
                                                        monkeypatch):
  # A gs:// export_dir exists only for tf.io.gfile: every local file call that could
  # touch the export fails here, and the export must still be complete.
  def local_file_call(*args, **kwargs):
    raise AssertionError("a local file call during export: %r" % (args,))

  for module, name in ((os, "makedirs"), (os, "mkdir"), (os, "rename"), (os, "rmdir"),
                       (os, "replace"), (shutil, "rmtree"), (shutil, "move"),
                       (tempfile, "mkdtemp")):
    monkeypatch.setattr(module, name, local_file_call)
  from inference import export  # pylint: disable=g-import-not-at-top
  from trainer import config  # pylint: disable=g-import-not-at-top
  from trainer.run import Run  # pylint: disable=g-import-not-at-top
  config.parse(base_config=config.saved_config(str(exported / "run")))
  export_dir = str(tmp_path / "exports" / "q")
  try:
    export.export(Run(), str(exported / "run"), export_dir, length=4)
  finally:
    gin.clear_config()
  assert sorted(os.listdir(tmp_path / "exports")) == ["q"]  # no staging left behind
  assert {"saved_model.pb", "variables", export.NPZ_FILE} <= set(os.listdir(export_dir))


def test_export_errors_are_one_line_and_exit_2(exported, tmp_path):
  results = cli.mtfzoo_many(
      [["export", "--model_dir", tmp_path / "none", "--export_dir", tmp_path / "e1"],
       ["export", "--model_dir", exported / "run", "--export_dir", tmp_path / "e2",
        "--temperature", "-0.5"]], tmp_path / "results.json")
  for result, named in zip(results, ("config.gin", "temperature")):
    lines = [l for l in result["stderr"].splitlines() if l.strip()]
    assert result["code"] == 2 and len(lines) == 1 and named in lines[0], result
  assert not os.path.exists(tmp_path / "e1") and not os.path.exists(tmp_path / "e2")
