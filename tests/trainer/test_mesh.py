"""Layout.slice_size against mtf's own slicing, and Layout.violations listing every
fault that validate reports the first of."""
import gin
import numpy as np
import pytest

from trainer import config
from trainer import mesh as mesh_lib
from trainer import model_summary
from trainer.errors import UserError
from trainer.run import Run

TINY = ["GPT.num_layers = 1", "GPT.d_model = 32", "Attention.heads = 2",
        "run.batch_size = 4", "run.sequence_length = 16"]


@pytest.fixture(autouse=True)
def clear_gin_config():
  yield
  gin.clear_config()


def graphs_under(mesh_shape, layout_rules, *bindings):
  config.parse(["gin/models/transformer.gin"], TINY + list(bindings) + [
      "run.mesh_shape = '%s'" % mesh_shape, "run.layout_rules = '%s'" % layout_rules])
  settings = Run()
  return settings.layout, model_summary.build_graphs(settings)


def test_slice_size_is_the_size_of_mtfs_slice_for_every_tensor():
  layout, graphs = graphs_under("data:2,model:2",
                                "batch:data,heads:model,d_ff:model,vocab:model")
  impl = layout.placement_impl()
  tensors = [t for g in (graphs.forward, graphs.training)
             for op in g.operations for t in op.outputs]
  split = [t for t in tensors if layout.slice_size(t.shape) < t.shape.size]
  assert split and len(split) < len(tensors)
  for t in tensors:
    assert layout.slice_size(t.shape) == int(np.prod(impl.slice_shape(t.shape))), t.name


def test_violations_lists_each_fault_once_and_validate_raises_the_first():
  # A batch of 4 over data:8 and 2 heads over model:8, in many tensors each.
  layout, graphs = graphs_under("data:8,model:8", "batch:data,heads:model")
  violations = layout.violations(graphs.training)
  assert [(v.dims, v.mesh_axis) for v in violations] == [(("batch",), "data"),
                                                         (("heads",), "model")]
  with pytest.raises(UserError) as raised:
    layout.validate(graphs.training)
  assert str(raised.value) == violations[0].message


def test_two_dimensions_on_one_axis_are_one_violation_naming_both():
  config.parse(["gin/models/transformer.gin"], TINY + [
      "GPT.channel_mixer = @GroupFeedForward", "GroupFeedForward.heads = 2",
      "run.mesh_shape = 'model:2'", "run.layout_rules = 'heads:model,d_ff:model'"])
  settings = Run()
  violations = settings.layout.violations(model_summary.build_graphs(settings).training)
  # Every GroupFeedForward tensor holds both; the first one stands for them.
  [violation] = violations
  assert (violation.dims, violation.mesh_axis) == (("heads", "d_ff"), "model")
  assert "both map to mesh axis model" in violation.message
