"""TPUEstimator input: byte-window shards -> batches of int32 inputs and targets."""
import os

from data import shards
from data.corpus import CorpusError
from mtf_compat import tf

# Windows held by the shuffle buffer of each host: a full shuffle for corpora up to
# this size, a bounded one (plus a shuffled file order) beyond it.
SHUFFLE_BUFFER_BYTES = 64 << 20


def make_input_fn(manifest_dir_or_files, sequence_length, training, seed=0, start_step=0):
  """input_fn(params) -> {'inputs', 'targets'}: int32 [params['batch_size'], length].

  A window w of sequence_length + 1 bytes gives inputs = w[:-1], targets = w[1:].
  training: this host's share of the windows, shuffled with `seed` (the same seed
    gives the same batches in every run), repeated forever, after skipping the
    start_step · batch_size windows that steps 0 .. start_step - 1 consumed, so a
    resumed run carries on the data order of an unresumed one. The skip reads and
    drops those windows: a resume at step s costs reading s · batch_size windows.
  not training (held-out evaluation): every window once, in file order; a last
    partial batch is dropped (see eval_steps).
  """
  files = shard_paths(manifest_dir_or_files, sequence_length)

  def input_fn(params):
    batch_size = params["batch_size"]
    index, count = input_pipeline(params)
    ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
      ds = ds.shuffle(len(files), seed=seed)
    ds = ds.flat_map(tf.data.TFRecordDataset).shard(count, index)
    if training:
      buffer_size = max(1, SHUFFLE_BUFFER_BYTES // (sequence_length + 1))
      ds = ds.shuffle(buffer_size, seed=seed).repeat().skip(start_step * batch_size)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(lambda records: features(records, batch_size, sequence_length),
                num_parallel_calls=tf.data.experimental.AUTOTUNE)
    return ds.prefetch(tf.data.experimental.AUTOTUNE)

  return input_fn


def features(records, batch_size, sequence_length):
  """Raw window bytes -> int32 byte values in [0, 255] (never Unicode code points)."""
  windows = tf.reshape(tf.io.decode_raw(records, tf.uint8),
                       [batch_size, sequence_length + 1])
  windows = tf.cast(windows, tf.int32)
  return {"inputs": windows[:, :-1], "targets": windows[:, 1:]}


def input_pipeline(params):
  """(index, count) of this input_fn call among TPUEstimator's per-host calls.

  Only a TPUEstimator on TPU passes params['context']; its deployment is
  (host device, invocation index, invocation count, replicas fed). With
  BROADCAST input the count is 1: one pipeline feeds every replica.
  """
  context = params.get("context")
  if context is None:
    return 0, 1
  _, index, count, _ = context.current_input_fn_deployment()
  return index, count


def shard_paths(manifest_dir_or_files, sequence_length):
  if not isinstance(manifest_dir_or_files, str):
    return list(manifest_dir_or_files)
  manifest = shards.read_manifest(manifest_dir_or_files)
  if manifest["sequence_length"] != sequence_length:
    raise CorpusError("shards in %r hold windows for sequence_length %d, not %d"
                      % (manifest_dir_or_files, manifest["sequence_length"],
                         sequence_length))
  return [os.path.join(manifest_dir_or_files, f) for f in manifest["files"]]


def eval_steps(manifest, batch_size):
  """Full batches in the held-out split: each window is evaluated at most once."""
  if manifest["windows"] < batch_size:
    raise CorpusError(
        "corpus %r: its %s split has %d windows of sequence_length %d, fewer than "
        "one batch of %d" % (manifest["source"], manifest["split"], manifest["windows"],
                             manifest["sequence_length"], batch_size))
  return manifest["windows"] // batch_size
