"""mtfzoo layout: per-device bytes against model_summary and against slices counted
here by hand, explained invalid layouts, memory marks, and the command's errors."""
import json

import gin
import pytest

from reports import layout_plan
from tests import cli_testing as cli
from trainer import config
from trainer import model_summary
from trainer.mesh import Violation
from trainer.run import Run

TINY = ["GPT.num_layers = 1", "GPT.d_model = 32", "Attention.heads = 2",
        "run.batch_size = 4", "run.sequence_length = 16"]
MODEL_SPLIT = {"heads", "d_ff", "vocab"}  # what the standard rules put on `model`


@pytest.fixture(autouse=True)
def clear_gin_config():
  yield
  gin.clear_config()


def settings(model_file="transformer", *bindings):
  config.parse(["gin/models/%s.gin" % model_file], TINY + list(bindings))
  return Run()


def by_layout(plan):
  return {(c.mesh_shape, c.layout_rules): c for c in plan.candidates}


def split_bytes(shapes, split_dims, ways, itemsize=4):
  """Σ size · itemsize, each tensor divided by `ways` if it has a dim in split_dims."""
  return sum(s.size * itemsize // (ways if set(s.dimension_names) & split_dims else 1)
             for s in shapes)


@pytest.mark.parametrize("model_file,bindings", [
    ("transformer", []),
    ("mixer_heads", ["run.optimizer = @SM3", "run.activation_dtype = 'bfloat16'"]),
    ("gmlp", ["run.microbatches = 2"]),
])
def test_one_device_bytes_are_what_model_summary_reports(model_file, bindings):
  run = settings(model_file, *bindings)
  summary = model_summary.summarize(run)
  plan = layout_plan.plan(run, 1)
  [one] = plan.candidates
  assert (one.mesh_shape, one.layout_rules, one.valid) == ("", "", True)
  assert one.parameter_bytes == summary.params * 4
  assert one.gradient_bytes == summary.params * 4
  assert one.optimizer_state_bytes == summary.optimizer_state_bytes
  assert one.activation_bytes == summary.activation_bytes
  assert one.activation_gradient_bytes == summary.largest_activations[0][2]
  assert one.total_bytes == (2 * summary.params * 4 + summary.optimizer_state_bytes
                             + summary.activation_bytes
                             + summary.largest_activations[0][2])


def test_model_axis_halves_the_variables_whose_dims_it_splits():
  run = settings()
  graphs = model_summary.build_graphs(run)
  variables = [v.shape for v in graphs.training.trainable_variables]
  slots = [v.shape for v in graphs.optimizer.slot_variables]
  whole = split_bytes(variables, set(), 1)
  halved = split_bytes(variables, MODEL_SPLIT, 2)
  assert whole / 2 < halved < whole  # some variables are split, some are not
  candidates = by_layout(layout_plan.plan(run, 2))
  model = candidates[("model:2", "heads:model,d_ff:model,vocab:model")]
  assert model.parameter_bytes == halved
  assert model.gradient_bytes == halved
  assert model.optimizer_state_bytes == split_bytes(slots, MODEL_SPLIT, 2)
  data = candidates[("data:2", "batch:data")]
  assert data.parameter_bytes == whole
  assert data.optimizer_state_bytes == split_bytes(slots, set(), 1)
  forward = [t.shape for t in model_summary.forward_tensors(graphs)]
  assert data.activation_bytes == split_bytes(forward, {"batch"}, 2)
  assert model.activation_bytes == split_bytes(forward, MODEL_SPLIT, 2)


def test_a_dimension_the_axis_does_not_divide_is_explained_and_worked_around():
  # 2 heads over model:4; a batch of 4 over data:8.
  candidates = by_layout(layout_plan.plan(settings(), 8))
  standard = candidates[("model:8", "heads:model,d_ff:model,vocab:model")]
  assert not standard.valid
  assert standard.problems == ["layout: dimension heads (size 2) is split over mesh "
                               "axis model (size 8), which does not divide it"]
  without_heads = candidates[("model:8", "d_ff:model,vocab:model")]
  assert without_heads.valid and without_heads.total_bytes > 0
  batch = candidates[("data:8", "batch:data")]
  assert batch.problems == ["layout: dimension batch (size 4) is split over mesh axis "
                            "data (size 8), which does not divide it"]
  assert candidates[("data:4,model:2",
                     "batch:data,heads:model,d_ff:model,vocab:model")].valid
  table = layout_plan.plan(settings(), 8).table()
  assert "invalid: dimension heads (size 2) is split over mesh axis model (size 8)" in table


def test_a_batch_the_data_axis_does_not_divide_is_one_row_without_fallbacks():
  # data:4,model:4 fails on the batch (2 over 4) and on the heads (2 over 4): dropping
  # model rules cannot fix the batch, so the mesh keeps its one explained row.
  plan = layout_plan.plan(settings("transformer", "run.batch_size = 2"), 16)
  [both] = [c for c in plan.candidates if c.mesh_shape == "data:4,model:4"]
  assert [p.split(" (")[0] for p in both.problems] == ["layout: dimension batch",
                                                       "layout: dimension heads"]
  # Where only the heads are at fault, the rules without them are tried.
  assert [c.layout_rules for c in plan.candidates if c.mesh_shape == "data:2,model:8"] == [
      "batch:data,heads:model,d_ff:model,vocab:model", "batch:data,d_ff:model,vocab:model"]


def test_an_axis_that_divides_no_model_dimension_is_one_row_naming_them_all():
  plan = layout_plan.plan(settings(), 3)
  [model] = [c for c in plan.candidates if c.mesh_shape == "model:3"]
  assert model.layout_rules == "heads:model,d_ff:model,vocab:model"
  assert sorted(v.dims for v in model.violations) == [("d_ff",), ("heads",), ("vocab",)]


def indivisible(dim, axis="model"):
  return Violation((dim,), axis, "")


def test_fallback_rules_drop_what_cannot_divide_and_branch_on_a_conflict():
  rules = ("heads", "d_ff", "vocab")
  assert layout_plan.fallback_rules(rules, [indivisible("heads"),
                                            indivisible("vocab")]) == [("d_ff",)]
  conflict = Violation(("heads", "d_ff"), "model", "")
  assert layout_plan.fallback_rules(rules, [conflict]) == [("d_ff", "vocab"),
                                                           ("heads", "vocab")]
  # Once heads must go, the conflict is gone with it.
  assert layout_plan.fallback_rules(rules, [indivisible("heads"), conflict]) == [
      ("d_ff", "vocab")]
  assert layout_plan.fallback_rules(rules, [indivisible("batch", "data"),
                                            indivisible("heads")]) == []
  assert layout_plan.fallback_rules(("heads",), [indivisible("heads")]) == []


def test_two_dimensions_on_the_model_axis_offer_the_rules_without_either():
  run = settings("transformer", "GPT.channel_mixer = @GroupFeedForward",
                 "GroupFeedForward.heads = 2")
  candidates = by_layout(layout_plan.plan(run, 2))
  standard = candidates[("model:2", "heads:model,d_ff:model,vocab:model")]
  assert not standard.valid
  assert any("dimensions heads and d_ff of one tensor" in p and "mesh axis model" in p
             for p in standard.problems), standard.problems
  assert candidates[("model:2", "heads:model,vocab:model")].valid
  assert candidates[("model:2", "d_ff:model,vocab:model")].valid


def test_rows_over_the_device_memory_are_marked():
  run = settings()
  totals = [c.total_bytes for c in layout_plan.plan(run, 4).candidates if c.valid]
  assert len(set(totals)) > 1
  limit_gb = (min(totals) + max(totals)) / 2 / 1e9
  plan = layout_plan.plan(run, 4, device_memory_gb=limit_gb)
  for c in plan.candidates:
    assert c.fits is (None if not c.valid else c.total_bytes <= limit_gb * 1e9)
  assert {c.fits for c in plan.candidates if c.valid} == {True, False}
  rows = plan.table().splitlines()[2:2 + len(plan.candidates)]
  for row, c in zip(rows, plan.candidates):
    assert ("does not fit in %g GB" % limit_gb in row) == (c.fits is False), row


def test_the_configured_layout_is_marked_or_added():
  standard = settings("transformer", "run.mesh_shape = 'data:2'",
                      "run.layout_rules = 'batch:data'")
  candidates = layout_plan.plan(standard, 2).candidates
  assert [(c.mesh_shape, c.layout_rules, c.configured) for c in candidates] == [
      ("data:2", "batch:data", True),
      ("model:2", "heads:model,d_ff:model,vocab:model", False)]
  gin.clear_config()
  own = settings("transformer", "run.mesh_shape = 'model:2'",
                 "run.layout_rules = 'heads:model'")
  candidates = layout_plan.plan(own, 2).candidates
  assert [(c.mesh_shape, c.layout_rules) for c in candidates if c.configured] == [
      ("model:2", "heads:model")]


def test_layout_command_prints_a_row_per_candidate_and_writes_them(tmp_path):
  out = tmp_path / "plan.json"
  args = ["--gin_file", "gin/models/transformer.gin"] + sum(
      (["--gin_param", b] for b in TINY), [])
  result = cli.mtfzoo("layout", "--devices", 4, "--device_memory_gb", 1e-6,
                      "--out", out, *args)
  written = json.loads(out.read_text())
  assert written["devices"] == 4
  meshes = [c["mesh_shape"] for c in written["candidates"]]
  assert meshes[:1] == ["data:4"] and "data:2,model:2" in meshes and "model:4" in meshes
  rows = result.stdout.splitlines()[2:2 + len(meshes)]
  assert [r.split()[0] for r in rows] == meshes
  for row, c in zip(rows, written["candidates"]):
    # 1 kB per device fits nothing; the invalid rows say why instead.
    assert ("does not fit in 1e-06 GB" in row) == c["valid"], row
    assert c["fits"] is (False if c["valid"] else None)


@pytest.mark.parametrize("devices_args,names", [
    (["--devices", 0], "--devices must be a positive number of devices, got 0"),
    (["--devices", -3], "--devices must be a positive number of devices, got -3"),
    ([], "--devices is required"),
    (["--devices", 2, "--device_memory_gb", 0], "--device_memory_gb must be > 0"),
])
def test_a_bad_devices_flag_is_one_line_exit_2(devices_args, names):
  result = cli.mtfzoo("layout", "--gin_file", "gin/models/transformer.gin",
                      *devices_args, check=False)
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("mtfzoo layout: "), lines
  assert names in lines[0]
  assert result.stdout == ""
