"""Training and held-out evaluation through the TPUEstimator."""
import json
import os
import sys
import time

import data
from mtf_compat import tf
from trainer import checkpoints
from trainer import config
from trainer import machine
from trainer import metrics
from trainer import model_summary
from trainer import prepare
from trainer.estimator import make_estimator, tpu_cluster
from trainer.errors import UserError


def data_dir(settings, model_dir):
  return settings.data_dir or os.path.join(model_dir, "data")


def shards(settings, model_dir, split):
  """{corpus: manifest} of a split's shards for every corpus of run.corpus."""
  return {name: prepare.split_shards(name, split, settings.sequence_length,
                                     data_dir(settings, model_dir))
          for name, _ in settings.corpora}


def check_corpus(settings):
  """Both splits of every corpus must hold a batch of windows; checked from the file
  sizes before anything is written or read."""
  for name, _ in settings.corpora:
    try:
      sources = data.sources(name)
    except data.CorpusError as e:
      raise UserError(str(e))
    for split in ("train", "eval"):
      windows = data.split_windows(sources, split, settings.sequence_length, name)[2]
      if windows < settings.batch_size:
        raise UserError(
            "corpus %r: its %s split has %d windows of run.sequence_length=%d bytes, "
            "fewer than one batch of run.batch_size=%d"
            % (name, split, windows, settings.sequence_length, settings.batch_size))


def train_input_fn(settings, manifests, start_step):
  """The training input from step start_step on: one corpus, or the weighted mixture."""
  return data.make_input_fn(
      {manifests[name]["dir"]: weight for name, weight in settings.corpora},
      settings.sequence_length, training=True, seed=settings.seed,
      start_step=start_step)


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
  train_manifests = shards(settings, model_dir, "train")
  eval_manifests = shards(settings, model_dir, "eval")
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
    input_fn = train_input_fn(settings, train_manifests, step)
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
    record_eval(settings, model_dir, eval_manifests, step, tpu_flags, out)


def write_run_info(settings, model_dir, summary):
  """run.json: what `compare` needs to know of a run besides its metrics."""
  info = {"params": summary.params, "params_by_role": summary.params_by_role,
          "optimizer_state_bytes": summary.optimizer_state_bytes,
          "activation_bytes": summary.activation_bytes,
          "num_layers": summary.num_layers, "d_model": summary.d_model,
          "batch_size": settings.batch_size,
          "sequence_length": settings.sequence_length,
          # On a TPU the host's matmul speed says nothing of the run's.
          "machine": machine.describe(measure_matmul=not settings.use_tpu)}
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


def evaluate_corpora(settings, model_dir, manifests, steps=None, tpu_flags=None):
  """evaluate() of each corpus: {'loss', 'bpc', 'step'} of the mixture, the weighted
  mean Σ w_k·bpc_k / Σ w_k (for one corpus, its own), and 'bpc_by_corpus'."""
  results = {name: evaluate(settings, model_dir, manifests[name], steps, tpu_flags)
             for name, _ in settings.corpora}
  total = sum(weight for _, weight in settings.corpora)
  mean = {key: sum(weight * results[name][key] for name, weight in settings.corpora)
          / total for key in ("loss", "bpc", "z_loss")}
  return dict(mean, step=max(r["step"] for r in results.values()),
              bpc_by_corpus={name: r["bpc"] for name, r in results.items()})


def record_eval(settings, model_dir, manifests, step, tpu_flags, out):
  result = evaluate_corpora(settings, model_dir, manifests, settings.eval_steps,
                            tpu_flags)
  path = os.path.join(model_dir, metrics.EVAL_FILE)
  records = [r for r in metrics.read_jsonl(path) if r["step"] < step]
  record = {"step": step, "eval_loss": result["loss"], "eval_bpc": result["bpc"],
            "eval_z_loss": result["z_loss"], "wall_time": time.time()}
  if len(settings.corpora) > 1:
    record["eval_bpc_by_corpus"] = result["bpc_by_corpus"]
  records.append(record)
  metrics.write_jsonl(path, records)
  by_corpus = "".join("  %s %.4f" % item for item in result["bpc_by_corpus"].items()
                      if len(settings.corpora) > 1)
  print("step %d  held-out bpc %.4f%s" % (step, result["bpc"], by_corpus), file=out,
        flush=True)
