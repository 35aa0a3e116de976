"""Training and held-out evaluation through the TPUEstimator."""
import json
import os
import sys
import time

import data
from mtf_compat import tf
from trainer import checkpoints
from trainer import config
from trainer import metrics
from trainer import model_summary
from trainer.estimator import make_estimator, tpu_cluster
from trainer.errors import UserError


def data_dir(settings, model_dir):
  return settings.data_dir or os.path.join(model_dir, "data")


def shards(settings, model_dir, split):
  try:
    return data.write_shards(settings.corpus, split, settings.sequence_length,
                             data_dir(settings, model_dir))
  except data.CorpusError as e:
    raise UserError(str(e))


def check_corpus(settings):
  """Both splits must hold a batch of windows; checked before anything is written."""
  try:
    corpus = data.corpus_bytes(settings.corpus)
  except data.CorpusError as e:
    raise UserError(str(e))
  for split in ("train", "eval"):
    windows = ((len(data.split(corpus, split, settings.corpus)) - 1)
               // settings.sequence_length)
    if windows < settings.batch_size:
      raise UserError(
          "corpus %r: its %s split has %d windows of run.sequence_length=%d bytes, "
          "fewer than one batch of run.batch_size=%d"
          % (settings.corpus, split, max(windows, 0), settings.sequence_length,
             settings.batch_size))


def train(settings, model_dir, tpu_flags=None, out=sys.stdout):
  """Trains to run.train_steps, resuming from model_dir's latest checkpoint."""
  try:
    summary = model_summary.summarize(settings)
  except ValueError as e:  # a model the gin config cannot build, e.g. heads ∤ d_model
    raise UserError("model: %s" % str(e).strip().splitlines()[0])
  checkpoints.check_compatible(model_dir, summary.variable_shapes)
  check_corpus(settings)
  if settings.use_tpu:
    tpu_cluster(tpu_flags, model_dir)  # a bad --tpu: before anything is written
  train_manifest = shards(settings, model_dir, "train")
  eval_manifest = shards(settings, model_dir, "eval")
  config.save(model_dir)
  write_run_info(settings, model_dir, summary)
  step = checkpoints.latest_step(model_dir)
  metrics.truncate_after(os.path.join(model_dir, metrics.METRICS_FILE), step)
  metrics.truncate_after(os.path.join(model_dir, metrics.EVAL_FILE), step)
  print("\n".join(summary.lines()), file=out)
  if step >= settings.train_steps:
    print("model_dir is already at step %d of %d" % (step, settings.train_steps),
          file=out)
    return
  if step:
    print("resuming from step %d" % step, file=out)
  while step < settings.train_steps:
    stop = settings.train_steps
    if settings.eval_every:
      stop = min(stop, (step // settings.eval_every + 1) * settings.eval_every)

    recorders = []

    def hooks(tensors, start=step):
      # On TPU the model_fn hands the hook's `record` to the host_call instead.
      recorders.append(metrics.MetricsHook(
          model_dir, tensors, start, settings.train_steps, settings.tokens_per_step,
          log_every=settings.log_every,
          stop_on_nonfinite=settings.on_nonfinite == "stop", out=out))
      return recorders[-1:]

    estimator = make_estimator(settings, model_dir, hooks=hooks, tpu_flags=tpu_flags)
    input_fn = data.make_input_fn(train_manifest["dir"], settings.sequence_length,
                                  training=True, seed=settings.seed, start_step=step)
    try:
      estimator.train(input_fn=input_fn, max_steps=stop)
    except metrics.NonFiniteError as e:
      raise UserError(str(e))
    except tf.errors.OpError:
      # On TPU the stop is raised on the host_call's thread and reaches us as a TF error.
      stopped = [r.nonfinite for r in recorders if r.nonfinite]
      if stopped:
        raise UserError(str(stopped[0]))
      raise
    for recorder in recorders:  # on TPU the outfeed may deliver steps after the saver
      recorder.flush()
    step = checkpoints.latest_step(model_dir)
    record_eval(settings, model_dir, eval_manifest, step, tpu_flags, out)


def write_run_info(settings, model_dir, summary):
  """run.json: what `compare` needs to know of a run besides its metrics."""
  info = {"params": summary.params, "params_by_role": summary.params_by_role,
          "optimizer_state_bytes": summary.optimizer_state_bytes,
          "activation_bytes": summary.activation_bytes,
          "num_layers": summary.num_layers, "d_model": summary.d_model,
          "batch_size": settings.batch_size,
          "sequence_length": settings.sequence_length}
  with tf.io.gfile.GFile(os.path.join(model_dir, "run.json"), "w") as f:
    json.dump(info, f, indent=1)


def evaluate(settings, model_dir, manifest, steps=None, tpu_flags=None):
  """{'loss': cross-entropy in nats, 'bpc': bits per byte, 'z_loss': the z-term in
  nats} over the held-out split (loss and bpc never count the z-term)."""
  checkpoints.require(model_dir)
  try:
    n = data.eval_steps(manifest, settings.batch_size)
  except data.CorpusError as e:
    raise UserError(str(e))
  steps = min(n, steps) if steps else n
  estimator = make_estimator(settings, model_dir, tpu_flags=tpu_flags)
  input_fn = data.make_input_fn(manifest["dir"], settings.sequence_length,
                                training=False)
  result = estimator.evaluate(input_fn=input_fn, steps=steps)
  return {"loss": float(result["cross_entropy"]), "bpc": float(result["bpc"]),
          "z_loss": float(result["z_loss"]), "step": int(result["global_step"])}


def record_eval(settings, model_dir, manifest, step, tpu_flags, out):
  result = evaluate(settings, model_dir, manifest, settings.eval_steps, tpu_flags)
  path = os.path.join(model_dir, metrics.EVAL_FILE)
  records = [r for r in metrics.read_jsonl(path) if r["step"] < step]
  records.append({"step": step, "eval_loss": result["loss"], "eval_bpc": result["bpc"],
                  "eval_z_loss": result["z_loss"], "wall_time": time.time()})
  metrics.write_jsonl(path, records)
  print("step %d  held-out bpc %.4f" % (step, result["bpc"]), file=out, flush=True)
