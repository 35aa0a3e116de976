"""The TPUEstimator model_fn: features -> mtf graph -> lowering -> EstimatorSpec."""
import math

from layers.context import Context, TRAIN, EVAL, PREDICT
from models import sampling
from models.gpt import GPT, VOCAB_SIZE
from mtf_compat import mtf, tf
from trainer import mesh as mesh_lib
from trainer import summaries
import optimizers

MODES = {tf.estimator.ModeKeys.TRAIN: TRAIN, tf.estimator.ModeKeys.EVAL: EVAL,
         tf.estimator.ModeKeys.PREDICT: PREDICT}
DTYPES = {"float32": tf.float32, "bfloat16": tf.bfloat16}


def make_dims(batch, length, d_model):
  return {"batch": mtf.Dimension("batch", batch),
          "length": mtf.Dimension("length", length),
          "memory_length": mtf.Dimension("memory_length", length),
          "d_model": mtf.Dimension("d_model", d_model),
          "vocab": mtf.Dimension("vocab", VOCAB_SIZE)}


def build_model(settings, mesh, mode, batch):
  """The model, its context and the mtf inputs' shape (no features imported yet)."""
  model = GPT()
  dims = make_dims(batch, settings.sequence_length, model.d_model)
  context = Context(mesh, mode, dims, model.num_layers,
                    DTYPES[settings.activation_dtype], *settings.layout)
  return model, context, mtf.Shape([dims["batch"], dims["length"]])


def is_finite(x):
  """True unless x is NaN or ±Inf.

  Not `x·0 == 0`: TF's graph optimizer folds x·0 to 0, so NaN·0 == 0 held.
  """
  return mtf.cwise(tf.math.is_finite, [x], output_dtype=tf.bool)


def train_graph(settings, model, context, inputs, targets, global_step, weights=None):
  """Loss, gradients (over run.microbatches serial microbatches), clipping, the
  scheduled learning rate and the update, skipped when the loss or gradient norm is
  not finite.

  Returns (loss, cross_entropy, z_loss, balance_loss, update_ops, grad_norm,
  learning_rate, finite, optimizer), mtf objects: loss = cross_entropy + z_loss +
  balance_loss is what is optimised (balance_loss: the layers' added losses,
  GPT.added_loss, 0 without a mixture of experts); bpc is reported from cross_entropy
  alone.
  """
  mesh = context.mesh
  poison = None
  if settings.nan_at_step >= 0:  # a test knob: this step's loss (and grads) are NaN
    # Step s is the update from global_step s - 1 to s, as metrics.jsonl numbers it.
    poison = mtf.import_fully_replicated(
        mesh, tf.where(tf.equal(global_step + 1, settings.nan_at_step), math.nan, 1.0),
        mtf.Shape([]))

  def microbatch_loss(features):
    cross_entropy, z_term = model.loss_terms(
        model.logits(features["inputs"], context), features["targets"], context,
        features.get("weights"))
    balance = model.added_loss(context)
    if poison is not None:
      cross_entropy *= poison
    # Microbatch losses and gradients are summed: scale so the sum is the mean.
    scale = 1.0 / settings.microbatches
    return {"loss": (cross_entropy + z_term + balance) * scale,
            "cross_entropy": cross_entropy * scale, "z_loss": z_term * scale,
            "balance_loss": balance * scale}

  features = {"inputs": inputs, "targets": targets}
  if weights is not None:  # a synthetic task's answer positions: the loss reads these
    features["weights"] = weights
  if settings.microbatches > 1:
    grads, outputs = mtf.serialize_training_step(
        features, microbatch_loss, context.dims["batch"], settings.microbatches)
  else:
    outputs = microbatch_loss(features)
    grads = mtf.gradients([outputs["loss"]], [v.outputs[0] for v in
                                              mesh.graph.trainable_variables])
  loss = outputs["loss"]
  variables = mesh.graph.trainable_variables  # complete now that the model is built
  grads, grad_norm = optimizers.GradientClipping()(grads, variables)
  lr_tf = optimizers.learning_rate_schedule(global_step, settings.train_steps,
                                            d_model=model.d_model)
  learning_rate = mtf.import_fully_replicated(mesh, tf.cast(lr_tf, tf.float32),
                                              mtf.Shape([]))
  finite = mtf.logical_and(is_finite(loss), is_finite(grad_norm))
  optimizer = settings.optimizer(learning_rate=learning_rate)
  update_ops = optimizer.apply_grads(grads, variables, apply_if=finite)
  return (loss, outputs["cross_entropy"], outputs["z_loss"], outputs["balance_loss"],
          update_ops, grad_norm, learning_rate, finite, optimizer)


def make_model_fn(settings, model_dir, extra_hooks=()):
  """A model_fn closed over the run settings; `extra_hooks(tensors)` -> training hooks."""

  def model_fn(features, labels, mode, params):
    del labels
    global_step = tf.train.get_or_create_global_step()
    tpu_context = params.get("context") if settings.use_tpu else None
    layout = settings.layout
    graph = mtf.Graph()
    if tpu_context is not None:
      mesh = mtf.Mesh(graph, "mesh", mesh_lib.tpu_variable_placer(tpu_context))
      mesh_impl = layout.simd_impl(tpu_context)
    else:
      mesh = mtf.Mesh(graph, "mesh")
      mesh_impl = layout.placement_impl()
    batch = int(features["inputs"].shape[0])
    model, context, token_shape = build_model(settings, mesh, MODES[mode], batch)
    inputs = mtf.import_tf_tensor(mesh, features["inputs"], token_shape)

    if mode == tf.estimator.ModeKeys.PREDICT and "prompt_length" in features:
      return sample_spec(settings, features, model, context, inputs, mesh_impl, params)

    targets = mtf.import_tf_tensor(mesh, features["targets"], token_shape)
    weights = (mtf.import_tf_tensor(mesh, features["weights"], token_shape)
               if "weights" in features else None)
    if mode == tf.estimator.ModeKeys.TRAIN:
      (loss, cross_entropy, z_term, balance_loss, update_ops, grad_norm, learning_rate,
       finite, _) = train_graph(settings, model, context, inputs, targets, global_step, weights)
    else:
      logits = model.logits(inputs, context)
      cross_entropy, z_term = model.loss_terms(logits, targets, context, weights)
      loss = cross_entropy + z_term
    if mode == tf.estimator.ModeKeys.PREDICT:
      # A TPU mesh exports only replicated tensors: replicate the [batch, length] outputs.
      log2_probs = mtf.anonymize(target_log2_probs(logits, targets, context))
      predicted = mtf.anonymize(mtf.argmax(logits, context.dims["vocab"]))
      layout.validate(graph)
      lowering = mtf.Lowering(graph, {mesh: mesh_impl})
      predictions = {"log2_probs": lowering.export_to_tf_tensor(log2_probs),
                     "predicted": lowering.export_to_tf_tensor(predicted)}
      return predict_spec(mode, predictions, lowering)

    layout.validate(graph)
    lowering = mtf.Lowering(graph, {mesh: mesh_impl})
    tf_loss = tf.cast(lowering.export_to_tf_tensor(loss), tf.float32)
    # Reported apart from the optimised loss: bpc is cross-entropy only.
    tf_cross_entropy = tf.cast(lowering.export_to_tf_tensor(cross_entropy), tf.float32)
    tf_z_loss = tf.cast(lowering.export_to_tf_tensor(z_term), tf.float32)
    with mtf.utils.outside_all_rewrites():
      restore_hook = mtf.MtfRestoreHook(lowering)

    if mode == tf.estimator.ModeKeys.EVAL:
      def metric_fn(cross_entropy, z_loss):
        return {"cross_entropy": tf.metrics.mean(cross_entropy),
                "bpc": tf.metrics.mean(cross_entropy / math.log(2.0)),
                "z_loss": tf.metrics.mean(z_loss)}
      return tf.estimator.tpu.TPUEstimatorSpec(
          mode, loss=tf_loss, evaluation_hooks=[restore_hook],
          eval_metrics=(metric_fn, [tf.fill([batch], tf_cross_entropy),
                                    tf.fill([batch], tf_z_loss)]))

    tf_finite = lowering.export_to_tf_tensor(finite)
    skipped = tf.get_variable("nonfinite_steps", [], tf.int64, tf.zeros_initializer(),
                              trainable=False)
    update = tf.group([lowering.lowered_operation(op) for op in update_ops])
    # The counters move after the update, so the schedule and run.nan_at_step read
    # this step's global_step, and skipped_steps is fetched with this step counted.
    with tf.control_dependencies([update]):
      skipped_now = tf.assign_add(skipped,
                                  tf.cast(tf.logical_not(tf_finite), tf.int64))
      # The updated global_step: the step number metrics.jsonl and TensorBoard show.
      step = tf.assign_add(global_step, 1)
      train_op = tf.group(step, skipped_now)
    tensors = {"step": step, "loss": tf_loss, "cross_entropy": tf_cross_entropy,
               "z_loss": tf_z_loss,
               "balance_loss": lowering.export_to_tf_tensor(balance_loss),
               "grad_norm": lowering.export_to_tf_tensor(grad_norm),
               "learning_rate": lowering.export_to_tf_tensor(learning_rate),
               "finite": tf_finite, "skipped_steps": skipped_now}
    # On TPU this model_fn runs inside TPUEstimator's training loop: ops built there
    # cannot be fetched or fed, so the checkpoint machinery is built outside it.
    with mtf.utils.outside_all_rewrites():
      saver = tf.train.Saver(tf.global_variables(), sharded=True,
                             max_to_keep=settings.keep_checkpoints,
                             save_relative_paths=True)
      tf.add_to_collection(tf.GraphKeys.SAVERS, saver)
      saver_listener = mtf.MtfCheckpointSaverListener(lowering)
      hooks = list(extra_hooks(tensors)) if extra_hooks else []
      if settings.use_tpu:
        # The step's tensors stay inside the TPU loop and reach the host only through
        # the host_call's outfeed: hooks that record steps get them there.
        recorders = [h.record for h in hooks if hasattr(h, "record")]
        session_hooks = []
      else:
        recorders = []
        session_hooks = [h for h in hooks if isinstance(h, tf.estimator.SessionRunHook)]
      listeners = [saver_listener] + [h for h in hooks if isinstance(
          h, tf.estimator.CheckpointSaverListener)]
      # No graph.pbtxt and no .meta beside each checkpoint: every command rebuilds
      # the graph from config.gin, TensorBoard reads the graph from the events file,
      # and printing the lowered graph as text was the largest single cost of a short
      # run's start-up (an eighth of a 3-step run of a one-block model), growing with
      # the model.
      saver_hook = tf.estimator.CheckpointSaverHook(
          model_dir, save_steps=settings.steps_per_checkpoint, saver=saver,
          listeners=listeners, save_graph_def=False)
    host_call = summaries.host_call(model_dir, tensors, recorders)
    # Hook order matters: metrics are recorded before the saver runs, so a checkpoint
    # never gets ahead of metrics.jsonl.
    # The Estimator stops on a NaN loss with its own hook, before run.on_nonfinite can
    # skip the step: it gets a finite stand-in; metrics.jsonl logs the real loss.
    finite_loss = tf.where(tf_finite, tf_loss, tf.zeros_like(tf_loss))
    return tf.estimator.tpu.TPUEstimatorSpec(
        mode, loss=finite_loss, train_op=train_op, host_call=host_call,
        training_hooks=[restore_hook] + session_hooks + [saver_hook])

  return model_fn


def target_log2_probs(logits, targets, context):
  """log2 p(target) at every position: [batch, length]."""
  vocab = context.dims["vocab"]
  logits = mtf.cast(logits, tf.float32)
  log_probs = logits - mtf.reduce_logsumexp(logits, vocab)
  picked = mtf.reduce_sum(log_probs * mtf.one_hot(targets, vocab, dtype=tf.float32),
                          reduced_dim=vocab)
  return picked * (1.0 / math.log(2.0))


def sample_spec(settings, features, model, context, inputs, mesh_impl, params):
  """Generated bytes [batch, params["sample_length"]] as predictions["generated"]."""
  mesh = context.mesh
  prompt_length = mtf.import_tf_tensor(mesh, features["prompt_length"],
                                       mtf.Shape([context.dims["batch"]]))
  generated = sampling.sample(model, context, inputs, prompt_length,
                              num_bytes=params["sample_length"],
                              temperature=params["temperature"],
                              top_k=params["top_k"], seed=params.get("seed", 0))
  # A TPU mesh exports only replicated tensors: replicate the [batch, generated] bytes.
  generated = mtf.anonymize(generated)
  settings.layout.validate(mesh.graph)
  lowering = mtf.Lowering(mesh.graph, {mesh: mesh_impl})
  predictions = {"generated": lowering.export_to_tf_tensor(generated)}
  return predict_spec(tf.estimator.ModeKeys.PREDICT, predictions, lowering)


def predict_spec(mode, predictions, lowering):
  """Predict/export: the scaffold copies master variables to slices after restore
  (hooks do not run on export)."""

  def scaffold_fn():
    local_init_op = tf.group(tf.train.Scaffold.default_local_init_op(),
                             lowering.copy_masters_to_slices(),
                             name="mtf_local_init_op")
    return tf.train.Scaffold(local_init_op=local_init_op)

  return tf.estimator.tpu.TPUEstimatorSpec(mode, predictions=predictions,
                                           scaffold_fn=scaffold_fn)
