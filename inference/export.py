"""mtfzoo export: a text-in, text-out SavedModel and an .npz of every full variable.

The serving graph uses only core TensorFlow string ops, so the SavedModel runs with
plain TensorFlow: `tf.saved_model.load(E).signatures["serving_default"](prompt=...)`.
Its variables are resource variables, which that TF2 loader restores without warnings.
Export always builds a CPU graph, also for a model trained on TPU (its mesh is laid
over virtual CPU devices), and writes through tf.io.gfile, so E may be on gs://.
"""
import dataclasses
import io
import posixpath
import uuid

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
    # TF1 graphs make reference variables, which TF2's loader cannot turn into Python
    # objects (a warning per variable): the served graph's are resource variables.
    with tf.variable_scope(tf.get_variable_scope(), use_resource=True):
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
  # A TPU-trained config (run.use_tpu=True) serves on CPU: same mesh, virtual devices.
  estimator = make_estimator(dataclasses.replace(settings, use_tpu=False), model_dir,
                             params=params, seed=seed, predict_batch_size=batch_size,
                             wrap_model_fn=with_text_output)
  export_dir = export_dir.rstrip("/")
  parent = posixpath.dirname(export_dir) or "."
  tf.io.gfile.makedirs(parent)
  staging = posixpath.join(parent, ".export-%s" % uuid.uuid4().hex)
  try:
    exported = estimator.export_saved_model(
        staging, serving_input_fn(settings.sequence_length, batch_size),
        checkpoint_path=checkpoint)
    exported = exported.decode() if isinstance(exported, bytes) else exported
    save_npz(checkpoint, posixpath.join(exported, NPZ_FILE))
    if tf.io.gfile.exists(export_dir):
      tf.io.gfile.rmtree(export_dir)  # empty, checked above
    tf.io.gfile.rename(exported, export_dir)
  finally:
    if tf.io.gfile.exists(staging):
      tf.io.gfile.rmtree(staging)
  print("exported %s (SavedModel, serving_default: prompt -> text) and %s"
        % (export_dir, posixpath.join(export_dir, NPZ_FILE)))
