"""mtfzoo export: a text-in, text-out SavedModel and an .npz of every full variable.

The serving graph uses only core TensorFlow string ops, so the SavedModel runs with
plain TensorFlow: `tf.saved_model.load(E).signatures["serving_default"](prompt=...)`.
"""
import io
import os
import shutil
import tempfile

import numpy as np

from mtf_compat import tf
from trainer import checkpoints
from trainer.estimator import make_estimator
from trainer.errors import UserError

NPZ_FILE = "variables.npz"


def serving_input_fn(sequence_length, batch_size):
  """prompt: a batch of up to `batch_size` strings -> the last `sequence_length` bytes
  of each, zero-padded into a [batch_size, sequence_length] int32 window."""

  def fn():
    prompt = tf.placeholder(tf.string, [None], name="prompt")
    n = tf.shape(prompt)[0]
    check = tf.debugging.assert_less_equal(
        n, batch_size, message="this SavedModel takes at most %d prompts per call"
        % batch_size)
    with tf.control_dependencies([check]):
      padded = tf.concat([prompt, tf.fill([batch_size - n], "\n")], 0)
    nbytes = tf.maximum(tf.strings.length(padded), 1)
    start = tf.maximum(nbytes - sequence_length, 0)
    kept = tf.strings.substr(padded, start, tf.fill(tf.shape(start), sequence_length))
    # An empty prompt starts from a newline, as at the start of a line of text.
    kept = tf.where(tf.equal(kept, ""), tf.fill(tf.shape(kept), "\n"), kept)
    tokens = tf.cast(tf.compat.v2.io.decode_raw(kept, tf.uint8,
                                                fixed_length=sequence_length),
                     tf.int32)
    features = {"inputs": tf.reshape(tokens, [batch_size, sequence_length]), "prompt_length": tf.reshape(tf.strings.length(kept), [batch_size]),
                "num_prompts": n}
    return tf.estimator.export.ServingInputReceiver(features, {"prompt": prompt})

  return fn


def bytes_to_text(byte_ids):
  """int32 [batch, n] byte values -> a string per row (the UTF-8 bytes, as generated)."""
  table = tf.constant([bytes([i]) for i in range(256)])
  return tf.strings.reduce_join(tf.gather(table, byte_ids), axis=-1)


def with_text_output(model_fn):
  """The serving model_fn: the sampler's bytes as one string per given prompt."""

  def serving_model_fn(features, labels, mode, params):
    spec = model_fn(features, labels, mode, params)
    outputs = {"text": bytes_to_text(spec.predictions["generated"])
                       [:features["num_prompts"]]}
    return spec._replace(predictions=outputs, export_outputs={
        "serving_default": tf.estimator.export.PredictOutput(outputs)})

  return serving_model_fn


def save_npz(checkpoint, path):
  """Every variable of the checkpoint, in full, under its mtf name."""
  values = {name: tf.train.load_variable(checkpoint, name)
            for name, _ in tf.train.list_variables(checkpoint)}
  buffer = io.BytesIO()  # np.savez seeks, which a GFile opened for writing cannot
  np.savez(buffer, **values)
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(buffer.getvalue())


def export(settings, model_dir, export_dir, length=200, temperature=0.0, top_k=0,
           batch_size=8, seed=0):
  checkpoint = checkpoints.require(model_dir)
  if tf.io.gfile.exists(export_dir) and tf.io.gfile.listdir(export_dir):
    raise UserError("export_dir %r is not empty: choose a new directory" % export_dir)
  if temperature < 0:
    raise UserError("temperature must be >= 0, got %g" % temperature)
  params = {"sample_length": length, "temperature": temperature, "top_k": top_k,
            "seed": seed}
  estimator = make_estimator(settings, model_dir, params=params, seed=seed,
                             predict_batch_size=batch_size,
                             wrap_model_fn=with_text_output)
  parent = os.path.dirname(os.path.abspath(export_dir))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
  try:
    exported = estimator.export_saved_model(
        staging, serving_input_fn(settings.sequence_length, batch_size),
        checkpoint_path=checkpoint)
    exported = exported.decode() if isinstance(exported, bytes) else exported
    save_npz(checkpoint, os.path.join(exported, NPZ_FILE))
    if os.path.exists(export_dir):
      os.rmdir(export_dir)
    os.rename(exported, export_dir)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  print("exported %s (SavedModel, serving_default: prompt -> text) and %s"
        % (export_dir, os.path.join(export_dir, NPZ_FILE)))
