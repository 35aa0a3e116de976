"""Mesh shape and layout rules: parsing, validation and the mesh implementation.

PlacementMeshImpl (CPU/GPU) puts one copy of each op on each device; SimdMeshImpl (TPU)
lowers to one SPMD program with the device assignment of the TPUEstimator context.
"""
import os
from typing import NamedTuple

from mtf_compat import mtf, tf
from trainer.errors import UserError


class Layout(NamedTuple):
  """A run's mesh shape and layout rules, parsed once (`Run.layout`) and handed to
  whoever builds, validates or lowers a graph. Unpacks as (shape, rules)."""
  shape: mtf.Shape
  rules: mtf.LayoutRules

  @property
  def num_devices(self):
    return self.shape.size

  def split(self, dim_name):
    """How many ways the layout splits a dimension of this name (1: not split)."""
    axis = self.rules.tensor_dimension_to_mesh_axis(mtf.Dimension(dim_name, 1),
                                                    self.shape)
    return 1 if axis is None else self.shape.dims[axis].size

  def slice_size(self, shape):
    """Elements of one device's slice of a tensor of this mtf shape (the layout is
    assumed to divide it: see `violations`)."""
    size = 1
    for d in shape.dims:
      size *= d.size // self.split(d.name)
    return size

  def validate(self, graph):
    validate_layout(graph, self.shape, self.rules)

  def violations(self, graph):
    """Every distinct Violation of this layout by a tensor of the graph."""
    return list(layout_violations(graph, self.shape, self.rules))

  def placement_impl(self):
    return placement_impl(self.shape, self.rules)

  def simd_impl(self, tpu_context):
    return simd_impl(self.shape, self.rules, tpu_context)


def parse(mesh_shape, layout_rules):
  """'data:2,model:2' and 'batch:data,heads:model' -> Layout(mtf.Shape, mtf.LayoutRules)."""
  try:
    shape = mtf.convert_to_shape(mesh_shape or "")
  except (ValueError, TypeError) as e:
    raise UserError("run.mesh_shape %r is not 'name:size,...' (%s)" % (mesh_shape, e))
  try:
    rules = mtf.convert_to_layout_rules(layout_rules or "")
  except (ValueError, TypeError) as e:
    raise UserError("run.layout_rules %r is not 'tensor_dim:mesh_dim,...' (%s)"
                    % (layout_rules, e))
  for d in shape.dims:
    if d.size < 1:
      raise UserError("run.mesh_shape %r: mesh axis %s has size %d; sizes must be "
                      "positive" % (mesh_shape, d.name, d.size))
  mesh_names = set(shape.dimension_names)
  for tensor_dim, mesh_dim in sorted(rules._pairs):  # pylint: disable=protected-access
    if mesh_dim not in mesh_names:
      raise UserError("run.layout_rules maps %s to mesh axis %r, which run.mesh_shape %r "
                      "does not have" % (tensor_dim, mesh_dim, mesh_shape))
  return Layout(shape, rules)


class Violation(NamedTuple):
  """Why a layout cannot lay out a tensor: `dims` are the tensor dimensions at fault
  (one that its mesh axis does not divide, or two that map to one axis)."""
  dims: tuple
  mesh_axis: str
  message: str


def layout_violations(graph, shape, rules):
  """Each distinct Violation of the layout by the graph's tensors, in graph order: a
  fault (the dimensions, their size, the axis) is reported at its first tensor."""
  seen = set()
  for op in graph.operations:
    for t in op.outputs:
      used = {}
      for d in t.shape.dims:
        axis = rules.tensor_dimension_to_mesh_axis(d, shape)
        if axis is None:
          continue
        mesh_dim = shape.dims[axis]
        if d.size % mesh_dim.size:
          found = Violation(
              (d.name,), mesh_dim.name,
              "layout: dimension %s (size %d) is split over mesh axis %s (size %d), "
              "which does not divide it" % (d.name, d.size, mesh_dim.name,
                                            mesh_dim.size))
        elif axis in used:
          found = Violation(
              (used[axis], d.name), mesh_dim.name,
              "layout: dimensions %s and %s of one tensor (%s) both map to mesh axis %s"
              % (used[axis], d.name, t.name, mesh_dim.name))
        else:
          used[axis] = d.name
          continue
        fault = (found.dims, found.mesh_axis, d.size)  # the first tensor stands for all
        if fault not in seen:
          seen.add(fault)
          yield found


def validate_layout(graph, shape, rules):
  """Every laid-out dimension of every tensor divides by its mesh axis, and no tensor
  maps two dimensions to one mesh axis; raises UserError naming the first violation."""
  for violation in layout_violations(graph, shape, rules):
    raise UserError(violation.message)


def local_devices(num_devices):
  """The devices of a placement mesh: GPUs when visible, else virtual CPUs."""
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    if len(gpus) != num_devices and num_devices > 1:
      raise UserError("run.mesh_shape has %d devices but %d GPUs are visible"
                      % (num_devices, len(gpus)))
    return ["/device:GPU:%d" % i for i in range(num_devices)]
  if num_devices == 1:
    return [""]
  return ["/device:CPU:%d" % i for i in range(num_devices)]


def available_cores():
  """The cores this process may run on (a container's CPU set, not the host's)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def thread_counts(intra_op_threads=0, inter_op_threads=0):
  """TF's (intra-op, inter-op) thread pool sizes; 0 means one thread per core."""
  cores = available_cores()
  return intra_op_threads or cores, inter_op_threads or cores


def session_config(num_devices, intra_op_threads=0, inter_op_threads=0):
  """Creates as many virtual CPU devices as the mesh has (harmless with GPUs), and
  thread pools sized by thread_counts."""
  intra, inter = thread_counts(intra_op_threads, inter_op_threads)
  config = tf.ConfigProto(device_count={"CPU": max(1, num_devices)},
                          intra_op_parallelism_threads=intra,
                          inter_op_parallelism_threads=inter,
                          allow_soft_placement=True)
  return config


def placement_impl(shape, rules):
  return mtf.placement_mesh_impl.PlacementMeshImpl(shape, rules,
                                                   local_devices(shape.size))


def simd_impl(shape, rules, tpu_context):
  """The TPU mesh: SPMD over the cores of the TPUEstimator's device assignment.

  mesh-tf maps logical to physical cores from the topology [x, y, z, cores per chip]
  and an absl flag, logical_cores_per_chip (default 2, as on v2/v3). v4 and v5e chips
  show TF one core each (v4's two TensorCores act as one), and with the flag at 2
  mesh-tf 0.1.21 returns a function instead of a mapping: the flag is set from the
  topology here.
  """
  import mesh_tensorflow.simd_mesh_impl as simd  # pylint: disable=g-import-not-at-top
  device_assignment = tpu_context.device_assignment
  physical_shape = [int(n) for n in device_assignment.topology.mesh_shape]
  num_cores = mtf.list_product(physical_shape)
  mesh_shape = ",".join("%s:%d" % (d.name, d.size) for d in shape.dims)
  if shape.size != num_cores:
    raise UserError("run.mesh_shape '%s' has %d devices but the TPU has %d cores"
                    % (mesh_shape, shape.size, num_cores))
  simd.FLAGS.logical_cores_per_chip = physical_shape[-1]
  try:
    logical_to_physical = simd.auto_logical_to_physical_tpu(
        shape.to_integer_list, physical_shape, device_assignment=device_assignment)
    return simd.SimdMeshImpl(shape, rules, [""] * shape.size, device_assignment,
                             logical_to_physical=logical_to_physical)
  except (ValueError, TypeError, IndexError) as e:
    raise UserError("mesh-tensorflow 0.1.21 cannot lay run.mesh_shape '%s' over the "
                    "TPU topology %s (x, y, z, cores per chip): %s"
                    % (mesh_shape, "x".join(map(str, physical_shape)),
                       str(e).strip().splitlines()[0]))


# Host 0 caches every core's TPU program and runs the input pipeline (BROADCAST
# input): the references (mesh-tf's transformer, gpt-neo) count 300 MB per replica
# as already used there before balancing the master variables.
HOST0_BYTES_PER_REPLICA = 300 * 1000000


def tpu_variable_placer(tpu_context):
  """Master variables live on the hosts' CPUs, each on the host with the least memory
  in use, host 0 starting at HOST0_BYTES_PER_REPLICA × replicas."""
  hosts = [tpu_context.tpu_host_placement_function(host_id=i)
           for i in range(tpu_context.num_hosts)]
  reserved = [HOST0_BYTES_PER_REPLICA * tpu_context.num_replicas] + [0] * (
      len(hosts) - 1)
  return mtf.utils.BalancedVariablePlacer(hosts, reserved)
