"""A corpus split as byte windows in fixed-size shards, prepared by streaming, in
parallel, resumably, with a manifest of per-shard sizes and checksums.

Record format: a shard is the raw bytes of its windows one after another, each
exactly sequence_length + 1 bytes (no framing), so window j of a shard starts at
byte j·(sequence_length + 1) and tf.data.FixedLengthRecordDataset reads it. Window i
of a split is split_bytes[i·L : i·L + L + 1] with L = sequence_length: windows
overlap by one byte, so every byte after the first is a target exactly once; the
last (len - 1) mod L bytes, too few for a window, are left out. Shard k holds
windows k·C ... k·C + C - 1 (C = windows_per_shard, the last shard fewer).

Streaming: the split is the byte range corpus.split_range gives, decided from file
sizes alone. Each shard needs only its own C·L + 1 bytes, which one process reads
(seeking into the corpus files, in READ_BLOCK blocks) and writes; shards are written
by `workers` processes at once. Memory is a few shards per worker, whatever the
corpus size.

Layout: data_dir/<corpus key>-<split>-L<sequence_length>/ holds
windows-00000-of-00003.bin ... and manifest.json: source, split, bytes,
sequence_length, windows, windows_per_shard, fingerprint (of the corpus files'
paths, sizes and modification times) and shards, a list of {file, windows, bytes,
sha256}. The dict this module returns adds 'dir', the folder itself.

Interruption: plan.json (the manifest without its shards) is written before any
shard, every shard is written to a temporary name and renamed when complete, and
the manifest is written last, by rename, so it only exists once every shard it names
is complete. A rerun with the same plan keeps the shards already there (checking
their sizes and recomputing their checksums) and writes only the missing ones.
"""
import bisect
import hashlib
import json
import multiprocessing
import os
import re
import uuid

import numpy as np

from data import corpus as corpus_lib
from data import files
from data.errors import CorpusError

FORMAT = "fixed-length windows"
MANIFEST = "manifest.json"
PLAN = "plan.json"
SHARD_BYTES = 8 << 20  # a shard's target size: windows_per_shard = this // (L + 1)
READ_BLOCK = 4 << 20  # corpus files are read in blocks of at most this many bytes
SHARD_PATTERN = re.compile(r"windows-\d+-of-\d+\.(bin|tfrecord)$")
TEMPORARY = re.compile(r"^\..*\.tmp$")


def write_shards(corpus, split, sequence_length, data_dir, records_per_shard=None,
                 workers=1, other_lengths_ok=False):
  """The manifest of the split's shards, writing those that are missing.

  records_per_shard: windows per shard (None: SHARD_BYTES of windows).
  workers: processes writing shards at once.
  other_lengths_ok: False refuses a data_dir that holds this corpus split's shards
    for other sequence lengths only (a run pointed at data prepared for another
    length); `mtfzoo prepare` passes True.
  """
  if sequence_length < 1:
    raise ValueError("sequence_length must be at least 1, not %d" % sequence_length)
  corpus_sources = corpus_lib.sources(corpus)
  start, stop, windows = split_windows(corpus_sources, split, sequence_length, corpus)
  if windows < 1:
    raise CorpusError("corpus %r: its %s split has %d bytes, too few for one window of "
                      "sequence_length + 1 = %d bytes"
                      % (corpus, split, stop - start, sequence_length + 1))
  if not other_lengths_ok:
    check_no_other_lengths(data_dir, corpus, split, sequence_length)
  per_shard = records_per_shard or max(1, SHARD_BYTES // (sequence_length + 1))
  out = os.path.join(data_dir, folder_name(corpus, split, sequence_length))
  plan = {"format": FORMAT, "source": corpus, "split": split, "bytes": stop - start,
          "sequence_length": sequence_length, "windows": windows,
          "windows_per_shard": per_shard, "fingerprint": fingerprint(corpus_sources)}
  manifest_path = os.path.join(out, MANIFEST)
  old = read_manifest(out) if files.exists(manifest_path) else None
  if old and is_complete(old, plan):
    return old

  files.makedirs(out)
  if old:  # its shards are about to change under it
    files.remove(manifest_path)
  if read_json(os.path.join(out, PLAN)) != plan:  # shards there are of another plan
    for name in files.listdir(out):
      if SHARD_PATTERN.match(name) or TEMPORARY.match(name):
        files.remove(os.path.join(out, name))
    write_json(os.path.join(out, PLAN), plan)
  tasks = shard_tasks(corpus, corpus_sources, start, windows, per_shard,
                      sequence_length, out)
  shards = run(write_shard, tasks, workers)
  names = {s["file"] for s in shards}
  for name in files.listdir(out):  # shards of an older, longer version; crash leftovers
    stale = SHARD_PATTERN.match(name) and name not in names
    if stale or TEMPORARY.match(name):
      files.remove(os.path.join(out, name))
  manifest = dict(plan, shards=shards)
  write_json(manifest_path, manifest)
  files.remove(os.path.join(out, PLAN))
  return dict(manifest, dir=out)


def split_windows(corpus_sources, split, sequence_length, corpus=corpus_lib.SHAKESPEARE):
  """(start, stop, windows): the split's byte range in the corpus and its windows."""
  start, stop = corpus_lib.split_range(corpus_lib.total_bytes(corpus_sources), split,
                                       corpus)
  return start, stop, max(0, (stop - start - 1) // sequence_length)


def shard_tasks(corpus, corpus_sources, split_start, windows, per_shard,
                sequence_length, out):
  """One task per shard: its file, window count and the pieces of corpus it reads."""
  num_shards = -(-windows // per_shard)
  separator = len(corpus_lib.SEPARATOR)
  ends = np.cumsum([s.size + separator for s in corpus_sources]).tolist()
  tasks = []
  for k in range(num_shards):
    count = min(per_shard, windows - k * per_shard)
    begin = split_start + k * per_shard * sequence_length
    tasks.append({"corpus": corpus, "path": os.path.join(
        out, "windows-%05d-of-%05d.bin" % (k, num_shards)), "windows": count,
                  "sequence_length": sequence_length,
                  "pieces": pieces(corpus_sources, ends, begin,
                                   begin + count * sequence_length + 1)})
  return tasks


def pieces(corpus_sources, ends, begin, end):
  """The joined corpus's bytes [begin, end) as pieces: (path, offset, length) of a
  file, or (None, separator bytes) between two files."""
  out = []
  i = bisect.bisect_right(ends, begin)
  position = begin
  while position < end:
    source = corpus_sources[i]
    file_start = ends[i] - len(corpus_lib.SEPARATOR) - source.size
    if position < file_start + source.size:
      length = min(end, file_start + source.size) - position
      out.append((source.path, position - file_start, length))
    else:
      separator_start = file_start + source.size
      out.append((None, corpus_lib.SEPARATOR[position - separator_start:
                                              end - separator_start]))
      length = len(out[-1][1])
    position += length
    i += position >= ends[i]
  return out


def read_pieces(corpus, task_pieces):
  """The bytes of the pieces, each file read from its offset in READ_BLOCK blocks."""
  parts = []
  for piece in task_pieces:
    if piece[0] is None:
      parts.append(piece[1])
      continue
    path, offset, length = piece
    with files.open_file(path) as f:
      f.seek(offset)
      while length:
        block = f.read(min(READ_BLOCK, length))
        if not block:
          raise CorpusError("corpus %r: %r is shorter than when its size was read: "
                            "did it change?" % (corpus, path))
        parts.append(block)
        length -= len(block)
  return b"".join(parts)


def write_shard(task):
  """Writes one shard (unless a complete one is there) -> its manifest entry."""
  length = task["sequence_length"] + 1
  expected = task["windows"] * length
  path = task["path"]
  digest = hashlib.sha256()
  if files.exists(path) and files.size(path) == expected:  # kept from an earlier run
    with files.open_file(path) as f:
      for block in iter(lambda: f.read(READ_BLOCK), b""):
        digest.update(block)
  else:
    content = windows_of(read_pieces(task["corpus"], task["pieces"]), task["windows"],
                         length - 1)
    digest.update(content)
    temporary = temporary_path(path)
    with files.open_file(temporary, "wb") as f:
      f.write(content)
    files.rename(temporary, path)
  return {"file": os.path.basename(path), "windows": task["windows"], "bytes": expected,
          "sha256": digest.hexdigest()}


def windows_of(span, count, sequence_length):
  """The `count` windows of span = count·L + 1 bytes, one after another: row i is
  span[i·L : i·L + L + 1], built as two block copies (the L bytes a window starts
  with, then its last byte), far faster than copying overlapping rows."""
  span = np.frombuffer(span, np.uint8)
  windows = np.empty((count, sequence_length + 1), np.uint8)
  windows[:, :sequence_length] = span[:count * sequence_length].reshape(count, -1)
  windows[:, sequence_length] = span[sequence_length::sequence_length][:count]
  return windows.tobytes()


def run(function, tasks, workers):
  """[function(t) for t in tasks], in `workers` processes when there are several.

  Processes are spawned, not forked: the parent has TensorFlow's threads, and a
  spawned worker imports only this package's TensorFlow-free modules.
  """
  workers = min(workers, len(tasks))
  if workers <= 1:
    return [function(t) for t in tasks]
  with multiprocessing.get_context("spawn").Pool(workers) as pool:
    return pool.map(function, tasks, chunksize=1)


def is_complete(manifest, plan):
  """The manifest is of this plan, and every shard it names is there in full."""
  def whole(shard):
    path = os.path.join(manifest["dir"], shard["file"])
    return files.exists(path) and files.size(path) == shard["bytes"]

  return (all(manifest.get(k) == v for k, v in plan.items())
          and all(whole(s) for s in manifest["shards"]))


def fingerprint(corpus_sources):
  """sha256 of the files' paths, sizes and modification times: a change to any file
  changes it, and it is known without reading the files."""
  stats = [[s.path, s.size, modified_ns(s.path)] for s in corpus_sources]
  return hashlib.sha256(json.dumps(stats).encode("utf-8")).hexdigest()


def modified_ns(path):
  if files.is_url(path):
    return files.gfile().stat(path).mtime_nsec
  return os.stat(path).st_mtime_ns


def check_no_other_lengths(data_dir, corpus, split, sequence_length):
  """A data_dir with this split's shards for other sequence lengths only is a mistake."""
  prefix = "%s-%s-L" % (corpus_key(corpus), split)
  if not files.isdir(data_dir):
    return
  lengths = sorted(int(name[len(prefix):]) for name in files.listdir(data_dir)
                   if name.startswith(prefix) and name[len(prefix):].isdigit()
                   and files.exists(os.path.join(data_dir, name, MANIFEST)))
  if lengths and sequence_length not in lengths:
    raise CorpusError(
        "data_dir %r holds shards of corpus %r for sequence_length %s, not %d "
        "(prepare them with `mtfzoo prepare --sequence_length %d`, or use another "
        "data_dir)" % (data_dir, corpus, " and ".join(map(str, lengths)),
                       sequence_length, sequence_length))


def read_manifest(directory):
  """The manifest.json of a shard folder, with 'dir' set to that folder."""
  manifest = read_json(os.path.join(directory, MANIFEST))
  if manifest is None:
    raise CorpusError("no %s in %r: not a folder of shards" % (MANIFEST, directory))
  return dict(manifest, dir=directory)


def folder_name(corpus, split, sequence_length):
  return "%s-%s-L%d" % (corpus_key(corpus), split, sequence_length)


def corpus_key(corpus):
  """'shakespeare', or a file's base name plus a hash of its full path (no clashes)."""
  if corpus == corpus_lib.SHAKESPEARE:
    return corpus
  name = (re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(corpus.rstrip("/")))
          or "corpus")
  return "%s-%s" % (name, hashlib.sha256(corpus.encode("utf-8")).hexdigest()[:8])


def read_json(path):
  if not files.exists(path):
    return None
  with files.open_file(path, "r") as f:
    return json.load(f)


def write_json(path, value):
  """Written to a temporary name, then renamed: a crash never leaves half a file."""
  temporary = temporary_path(path)
  with files.open_file(temporary, "w") as f:
    json.dump(value, f, indent=1, sort_keys=True)
  files.rename(temporary, path)


def temporary_path(path):
  return os.path.join(os.path.dirname(path),
                      ".%s.%s.tmp" % (os.path.basename(path), uuid.uuid4().hex))
