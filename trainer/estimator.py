"""The TPUEstimator: TPU when run.use_tpu, else CPU/GPU with virtual CPU devices."""
from tensorflow.core.protobuf import rewriter_config_pb2

from mtf_compat import tf
from trainer import mesh as mesh_lib
from trainer.errors import UserError
from trainer.model_fn import make_model_fn


def tpu_cluster(tpu_flags, model_dir=None):
  """The Cloud TPU to run on, from --tpu/--zone/--project: `local` on a TPU VM, a TPU
  name, or a TPU Node's grpc:// address."""
  if not tpu_flags or not tpu_flags.get("tpu"):
    raise UserError("run.use_tpu=True needs --tpu ('local' on a TPU VM, a TPU name or "
                    "a TPU Node's grpc:// address)")
  if (tpu_flags["tpu"].startswith("grpc://") and model_dir
      and not model_dir.startswith("gs://")):
    raise UserError("--tpu %s is a TPU Node, which reads and writes the model_dir "
                    "itself and cannot reach this machine's disk: model_dir %r must be "
                    "on gs://" % (tpu_flags["tpu"], model_dir))
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu_flags["tpu"], zone=tpu_flags.get("zone"), project=tpu_flags.get("project"))
    resolver.master()  # a TPU name is looked up here, so a failure names --tpu
  except (RuntimeError, ValueError) as e:  # e.g. a TPU name without Google's API client
    raise UserError("--tpu %r: %s" % (tpu_flags["tpu"], str(e).strip().splitlines()[0]))
  return resolver


def tpu_session_config():
  """The references' TPU session: no grappler meta optimizer (minutes of start-up on a
  large graph, little gain for a program XLA compiles anyway)."""
  return tf.ConfigProto(graph_options=tf.GraphOptions(
      rewrite_options=rewriter_config_pb2.RewriterConfig(disable_meta_optimizer=True)))


def run_config(settings, model_dir, seed=None, tpu_flags=None):
  tpu_config = tf.estimator.tpu.TPUConfig(
      iterations_per_loop=settings.iterations_per_loop,
      num_cores_per_replica=1,
      # mtf splits the batch itself: one host feeds the whole mesh.
      per_host_input_for_training=tf.estimator.tpu.InputPipelineConfig.BROADCAST)
  kwargs = dict(
      model_dir=model_dir,
      # Checkpoints are written by the model_fn's own sharded saver with the mtf
      # listener; the Estimator's default saver would save untrained slices.
      save_checkpoints_steps=None, save_checkpoints_secs=None,
      keep_checkpoint_max=settings.keep_checkpoints,
      save_summary_steps=0, log_step_count_steps=None,
      tf_random_seed=settings.seed if seed is None else seed,
      tpu_config=tpu_config)
  if settings.use_tpu:
    kwargs["cluster"] = tpu_cluster(tpu_flags, model_dir)
    kwargs["session_config"] = tpu_session_config()
  else:
    kwargs["session_config"] = mesh_lib.session_config(
        settings.layout.num_devices, settings.intra_op_threads, settings.inter_op_threads)
  return tf.estimator.tpu.RunConfig(**kwargs)


def make_estimator(settings, model_dir, params=None, hooks=None, seed=None,
                   tpu_flags=None, predict_batch_size=None, wrap_model_fn=None):
  """hooks(tensors) -> extra training hooks (and checkpoint listeners);
  wrap_model_fn(model_fn) -> the model_fn to use (export adds its serving outputs)."""
  model_fn = make_model_fn(settings, model_dir, hooks)
  return tf.estimator.tpu.TPUEstimator(
      model_fn=wrap_model_fn(model_fn) if wrap_model_fn else model_fn,
      config=run_config(settings, model_dir, seed, tpu_flags),
      use_tpu=settings.use_tpu,
      train_batch_size=settings.batch_size,
      eval_batch_size=settings.batch_size,
      predict_batch_size=predict_batch_size or settings.batch_size,
      params=dict(params or {}),
      export_to_tpu=False)
