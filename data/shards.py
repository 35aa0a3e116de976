"""A corpus split as byte windows in TFRecord shards, written once, with a manifest.

Record format: every record of a shard is the raw bytes of one window (no
tf.train.Example), exactly sequence_length + 1 of them. Window i is
split_bytes[i·L : i·L + L + 1] with L = sequence_length: windows overlap by one
byte, so every byte after the first is a target exactly once; the last
(len - 1) mod L bytes, too few for a window, are left out.

Layout: data_dir/<corpus key>-<split>-L<sequence_length>/ holds
windows-00000-of-00003.tfrecord ... and manifest.json with the keys source,
split, bytes, sequence_length, windows, sha256 (of the split's bytes) and files.
The manifest is written last, by rename, so it only exists once every file it
names is complete; the dict this module returns adds 'dir', the folder itself.
"""
import contextlib
import hashlib
import json
import os
import re
import uuid

from data import corpus as corpus_lib
from data.corpus import CorpusError
from mtf_compat import tf

MANIFEST = "manifest.json"
SHARD_PATTERN = re.compile(r"windows-\d+-of-\d+\.tfrecord$")


def write_shards(corpus, split, sequence_length, data_dir, records_per_shard=8192):
  """The manifest of the split's shards, writing them unless they already match."""
  if sequence_length < 1:
    raise ValueError("sequence_length must be at least 1, not %d" % sequence_length)
  data = corpus_lib.split(corpus_lib.corpus_bytes(corpus), split, corpus)
  windows = (len(data) - 1) // sequence_length
  if windows < 1:
    raise CorpusError("corpus %r: its %s split has %d bytes, too few for one window of "
                      "sequence_length + 1 = %d bytes"
                      % (corpus, split, len(data), sequence_length + 1))
  out = os.path.join(data_dir, "%s-%s-L%d" % (corpus_key(corpus), split, sequence_length))
  digest = hashlib.sha256(data).hexdigest()
  old = read_manifest(out) if tf.io.gfile.exists(os.path.join(out, MANIFEST)) else None
  if old and is_complete(old, digest, sequence_length):
    return old

  tf.io.gfile.makedirs(out)
  if old:  # its shards are about to change under it
    tf.io.gfile.remove(os.path.join(out, MANIFEST))
  num_shards = -(-windows // records_per_shard)
  files = ["windows-%05d-of-%05d.tfrecord" % (i, num_shards) for i in range(num_shards)]
  for i, name in enumerate(files):
    first, stop = i * records_per_shard, min(windows, (i + 1) * records_per_shard)
    with atomic_path(os.path.join(out, name)) as path:
      write_windows(path, data, sequence_length, first, stop)
  for name in tf.io.gfile.listdir(out):  # shards of an older, longer version
    if SHARD_PATTERN.match(name) and name not in files:
      tf.io.gfile.remove(os.path.join(out, name))
  manifest = {"source": corpus, "split": split, "bytes": len(data),
              "sequence_length": sequence_length, "windows": windows, "sha256": digest,
              "files": files}
  with atomic_path(os.path.join(out, MANIFEST)) as path:
    write_json(path, manifest)
  return dict(manifest, dir=out)


def is_complete(manifest, sha256, sequence_length):
  """The manifest is of these bytes and windows, and every shard it names exists."""
  return (manifest["sha256"] == sha256 and manifest["sequence_length"] == sequence_length
          and all(tf.io.gfile.exists(os.path.join(manifest["dir"], f))
                  for f in manifest["files"]))


def read_manifest(directory):
  """The manifest.json of a shard folder, with 'dir' set to that folder."""
  path = os.path.join(directory, MANIFEST)
  if not tf.io.gfile.exists(path):
    raise CorpusError("no %s in %r: not a folder of shards" % (MANIFEST, directory))
  with tf.io.gfile.GFile(path, "r") as f:
    return dict(json.load(f), dir=directory)


def corpus_key(corpus):
  """'shakespeare', or a file's base name plus a hash of its full path (no clashes)."""
  if corpus == corpus_lib.SHAKESPEARE:
    return corpus
  name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(corpus.rstrip("/"))) or "corpus"
  return "%s-%s" % (name, hashlib.sha256(corpus.encode("utf-8")).hexdigest()[:8])


def write_windows(path, data, sequence_length, first, stop):
  with tf.io.TFRecordWriter(path) as writer:
    for i in range(first, stop):
      writer.write(data[i * sequence_length:(i + 1) * sequence_length + 1])


def write_json(path, value):
  with tf.io.gfile.GFile(path, "w") as f:
    json.dump(value, f, indent=1, sort_keys=True)


@contextlib.contextmanager
def atomic_path(path):
  """A temporary name to write, then renamed to path: a crash never leaves half a file."""
  temporary = os.path.join(os.path.dirname(path),
                           ".%s.%s.tmp" % (os.path.basename(path), uuid.uuid4().hex))
  yield temporary
  tf.io.gfile.rename(temporary, path, overwrite=True)
