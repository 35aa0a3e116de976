"""Cloud TPU device assignments built on CPU, and a CPU reproduction of TPUEstimator's
TPU loop (`tpu.split_compile_and_shard` around `training_loop.while_loop`), in which a
model_fn is built exactly where TPUEstimator builds it. Nothing here runs on a TPU."""
import numpy as np

from mtf_compat import tf
# pylint: disable=g-direct-tensorflow-import
from tensorflow.python.tpu import tpu
from tensorflow.python.tpu import tpu_function
from tensorflow.python.tpu import training_loop
from tensorflow.python.tpu.ops import tpu_ops
from tensorflow_estimator.python.estimator.tpu import tpu_estimator

# Topology mesh shapes as TF reports them: [x, y, z, cores per chip], and the hosts.
# v2/v3 chips have two cores; v4 chips show one (its two TensorCores act as one) and
# v5e chips have one.
TOPOLOGIES = {
    "v3_8": ([2, 2, 1, 2], 1),
    "v3_32": ([4, 4, 1, 2], 4),
    "v4_8": ([2, 2, 1, 1], 1),
    "v4_32": ([2, 2, 4, 1], 4),
    "v5e_8": ([2, 4, 1, 1], 1),
}


def topology(name):
  """The Topology of a Cloud TPU type, its cores in x-fastest order over the hosts."""
  (x, y, z, cores), hosts = TOPOLOGIES[name]
  coordinates = [(i, j, k, core) for k in range(z) for j in range(y) for i in range(x)
                 for core in range(cores)]
  return tf.tpu.experimental.Topology(
      mesh_shape=[x, y, z, cores],
      device_coordinates=np.array(coordinates, np.int32).reshape(hosts, -1, 4))


class FakeTPUContext:
  """What the model_fn reads from params['context'] under a TPUEstimator."""

  def __init__(self, name):
    topology_ = topology(name)
    self.num_replicas = topology_.num_tasks * topology_.num_tpus_per_task
    self.device_assignment = tf.tpu.experimental.DeviceAssignment.build(
        topology_, num_replicas=self.num_replicas)
    self.num_hosts = topology_.num_tasks

  def tpu_host_placement_function(self, host_id):
    return "/job:worker/task:%d/device:CPU:0" % host_id


def build_in_tpu_loop(step_fn, context, iterations=2):
  """Builds step_fn() -> loss inside the replicated TPU loop of TPUEstimator (train,
  eval and predict all wrap their step this way); returns the loop's output."""

  @tpu_function.on_device_training_loop
  def per_replica(replica_id):
    del replica_id
    return training_loop.while_loop(lambda i, loss: i < iterations,
                                    lambda i, loss: [i + 1, step_fn()],
                                    inputs=[0, 0.0])[1:]

  _, outputs = tpu.split_compile_and_shard(
      per_replica, inputs=[[tf.constant(i) for i in range(context.num_replicas)]],
      num_shards=context.num_replicas, outputs_from_all_shards=False,
      device_assignment=context.device_assignment)
  return outputs


def create_global_step(graph):
  """TPUEstimator's global step (a resource variable, as a TPU program needs)."""
  return tpu_estimator._create_global_step(graph)  # pylint: disable=protected-access


def infeed(shapes, dtypes):
  """The features as TPUEstimator hands them to the model_fn: from the infeed queue."""
  return tpu_ops.infeed_dequeue_tuple(dtypes=dtypes, shapes=shapes)


def ops_inside_tpu_computation(graph):
  """Operations that XLA compiles for the TPU (marked with the replicate attribute)."""
  return [op for op in graph.get_operations() if "_tpu_replicate" in op.node_def.attr]
