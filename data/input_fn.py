"""TPUEstimator input: byte-window shards -> batches of int32 inputs and targets.

The training order is a function of (seed, position): window p of the endless
sequence is found without reading the windows before it, so a run resumed at step s
starts reading at s·batch_size at once, and reads what an uninterrupted run would.

One corpus (WindowOrder): epoch e = p // N of its N windows visits the shards in a
permutation seeded by (seed, corpus, e), read in groups of G consecutive shards of
that permutation (G·shard bytes ≈ shuffle_bytes, so a corpus up to that size is one
group: a full shuffle), each group's windows in a permutation seeded by
(seed, corpus, e, group). Locating p costs one permutation of the shards and a cumsum.

A mixture: position p of block b = p // MIXTURE_BLOCK draws from corpus k when the
block's seeded permutation of a multiset (corpus k repeated quota_k times, quotas
∝ weights) has k at p mod MIXTURE_BLOCK. Every block holds each corpus's quota
exactly, so the windows corpus k gave before p are b·quota_k plus a count within one
block: each corpus's order resumes at its own position.
"""
import os

import numpy as np

from data import shards
from data.errors import CorpusError
from mtf_compat import tf

# Bytes of windows shuffled together: a full shuffle for corpora up to this size,
# groups of shards (in a shuffled order) beyond it.
SHUFFLE_BYTES = 64 << 20
MIXTURE_BLOCK = 4096  # positions over which a mixture meets its weights exactly
ALGORITHM = "philox"  # one stateless random algorithm on every host


def make_input_fn(shard_dirs, sequence_length, training, seed=0, start_step=0,
                  shuffle_bytes=SHUFFLE_BYTES):
  """input_fn(params) -> {'inputs', 'targets'}: int32 [params['batch_size'], length].

  shard_dirs: a folder of shards (a manifest), or for training a mixture
    {folder: weight} sampled in proportion to the weights (> 0).
  A window w of sequence_length + 1 bytes gives inputs = w[:-1], targets = w[1:].
  training: the endless seeded order above from position start_step · batch_size
    (times the hosts), so a resumed run carries on the data order of an unresumed
    one at no cost; host i of n takes positions i, i + n, i + 2n, ...
  not training (held-out evaluation): every window once, in file order, each host
    every n-th; a last partial batch is dropped (see eval_steps).
  """
  weighted = shard_dirs if isinstance(shard_dirs, dict) else {shard_dirs: 1.0}
  manifests = [checked_manifest(d, sequence_length) for d in weighted]
  if not training and len(manifests) != 1:
    raise ValueError("held-out evaluation reads one corpus at a time")

  def input_fn(params):
    batch_size = params["batch_size"]
    index, count = input_pipeline(params)
    if training:
      orders = [WindowOrder(m, seed, k, shuffle_bytes) for k, m in enumerate(manifests)]
      first = (start_step * batch_size) * count + index
      ds = mixture(orders, list(weighted.values()), seed, first).shard(count, 0)
    else:
      paths = [os.path.join(manifests[0]["dir"], s["file"])
               for s in manifests[0]["shards"]]
      ds = tf.data.FixedLengthRecordDataset(paths, sequence_length + 1)
      ds = ds.shard(count, index).map(lambda r: tf.io.decode_raw(r, tf.uint8))
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(lambda windows: features(windows, batch_size, sequence_length),
                num_parallel_calls=tf.data.experimental.AUTOTUNE)
    return ds.prefetch(tf.data.experimental.AUTOTUNE)

  return input_fn


class WindowOrder:
  """The endless seeded order of one corpus's windows (see the module docstring)."""

  def __init__(self, manifest, seed, corpus_index, shuffle_bytes):
    self.length = manifest["sequence_length"] + 1
    self.paths = [os.path.join(manifest["dir"], s["file"]) for s in manifest["shards"]]
    self.shard_windows = [s["windows"] for s in manifest["shards"]]
    self.windows = sum(self.shard_windows)
    shard_bytes = manifest["windows_per_shard"] * self.length
    self.group = max(1, shuffle_bytes // shard_bytes)
    self.groups = -(-len(self.paths) // self.group)
    self.key = tf.constant([seed, corpus_index], tf.int64)

  def epoch_key(self, epoch):
    return tf.random.experimental.stateless_fold_in(self.key, epoch, alg=ALGORITHM)

  def shard_order(self, epoch):
    key = tf.random.experimental.stateless_fold_in(self.epoch_key(epoch), -1,
                                                   alg=ALGORITHM)
    return tf.random.experimental.stateless_shuffle(
        tf.range(len(self.paths), dtype=tf.int64), key, alg=ALGORITHM)

  def locate(self, position):
    """(group number counted over epochs, windows to skip in it) of a position."""
    epoch, within = position // self.windows, position % self.windows
    sizes = tf.gather(tf.constant(self.shard_windows, tf.int64),
                      self.shard_order(epoch))
    group_of_slot = tf.range(len(self.paths), dtype=tf.int64) // self.group
    group_sizes = tf.math.unsorted_segment_sum(sizes, group_of_slot, self.groups)
    starts = tf.cumsum(group_sizes, exclusive=True)
    group = tf.searchsorted(starts, within[None], side="right",
                            out_type=tf.int64)[0] - 1
    return epoch * self.groups + group, within - tf.gather(starts, group)

  def group_windows(self, number):
    """uint8 [windows, length]: one group's windows in their seeded order."""
    epoch, group = number // self.groups, number % self.groups
    slots = self.shard_order(epoch)[group * self.group:(group + 1) * self.group]
    contents = tf.map_fn(tf.io.read_file, tf.gather(tf.constant(self.paths), slots),
                         fn_output_signature=tf.string)
    windows = tf.reshape(tf.io.decode_raw(tf.strings.reduce_join(contents), tf.uint8),
                         [-1, self.length])
    key = tf.random.experimental.stateless_fold_in(self.epoch_key(epoch), group,
                                                   alg=ALGORITHM)
    order = tf.random.experimental.stateless_shuffle(
        tf.range(tf.shape(windows, out_type=tf.int64)[0]), key, alg=ALGORITHM)
    return tf.gather(windows, order)

  def windows_from(self, position):
    """Dataset of uint8 [length] windows: positions position, position + 1, ..."""
    first_group, skip = self.locate(position)

    def group(i):
      return self.group_windows(first_group + i)[tf.where(tf.equal(i, 0), skip, 0):]

    # The next group is read while this one is used: no pause at group boundaries.
    return tf.data.experimental.Counter().map(group).prefetch(1).unbatch()


def mixture(orders, weights, seed, first):
  """Dataset of windows from position `first` of the (mixed) order."""
  start = tf.data.Dataset.from_tensors(tf.constant(first, tf.int64))
  if len(orders) == 1:
    return start.flat_map(orders[0].windows_from)
  quotas = block_quotas(weights, MIXTURE_BLOCK)
  key = tf.constant([seed, -1], tf.int64)
  multiset = tf.constant(np.repeat(np.arange(len(quotas)), quotas), tf.int64)

  def block_choices(block):
    return tf.random.experimental.stateless_shuffle(
        multiset, tf.random.experimental.stateless_fold_in(key, block, alg=ALGORITHM),
        alg=ALGORITHM)

  def drawn_before(position):  # [corpora]: windows each corpus gave before position
    block, within = position // MIXTURE_BLOCK, position % MIXTURE_BLOCK
    partial = tf.math.bincount(tf.cast(block_choices(block)[:within], tf.int32),
                               minlength=len(quotas), maxlength=len(quotas),
                               dtype=tf.int64)
    return block * tf.constant(quotas, tf.int64) + partial

  streams = [start.flat_map(lambda p, k=k: orders[k].windows_from(drawn_before(p)[k]))
             for k in range(len(orders))]
  choices = start.flat_map(
      lambda p: tf.data.experimental.Counter(p // MIXTURE_BLOCK).map(block_choices)
      .unbatch().skip(p % MIXTURE_BLOCK))
  return tf.data.Dataset.choose_from_datasets(streams, choices)


def block_quotas(weights, block):
  """Windows of each corpus per block: ∝ weights, by largest remainder, at least 1."""
  exact = np.asarray(weights, np.float64) / np.sum(weights) * block
  quotas = np.maximum(1, np.floor(exact)).astype(np.int64)
  for k in np.argsort(-(exact - np.floor(exact)), kind="stable"):
    if quotas.sum() >= block:
      break
    quotas[k] += 1
  return quotas.tolist()


def features(windows, batch_size, sequence_length):
  """uint8 windows -> int32 byte values in [0, 255] (never Unicode code points)."""
  windows = tf.cast(tf.reshape(windows, [batch_size, sequence_length + 1]), tf.int32)
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


def checked_manifest(directory, sequence_length):
  manifest = shards.read_manifest(directory)
  if manifest["sequence_length"] != sequence_length:
    raise CorpusError("shards in %r hold windows for sequence_length %d, not %d"
                      % (directory, manifest["sequence_length"], sequence_length))
  if manifest.get("format") != shards.FORMAT:
    raise CorpusError("shards in %r are of an older format: prepare them again"
                      % directory)
  return manifest


def eval_steps(manifest, batch_size):
  """Full batches in the held-out split: each window is evaluated at most once."""
  if manifest["windows"] < batch_size:
    raise CorpusError(
        "corpus %r: its %s split has %d windows of sequence_length %d, fewer than "
        "one batch of %d" % (manifest["source"], manifest["split"], manifest["windows"],
                             manifest["sequence_length"], batch_size))
  return manifest["windows"] // batch_size
