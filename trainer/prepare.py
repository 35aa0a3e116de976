"""Preparing a corpus's shards: `mtfzoo prepare`, and what `train` runs first."""
import os
import sys
import time

import data
from trainer.errors import UserError


def default_workers():
  """One process per core this process may use."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    return os.cpu_count() or 1


def split_shards(corpus, split, sequence_length, data_dir, workers=None,
                 other_lengths_ok=False):
  """The manifest of a split's shards, written (or finished) if needed."""
  try:
    return data.write_shards(corpus, split, sequence_length, data_dir,
                             workers=workers or default_workers(),
                             other_lengths_ok=other_lengths_ok)
  except data.CorpusError as e:
    raise UserError(str(e))


def prepare(corpus, data_dir, sequence_length, workers=None, out=sys.stdout):
  """Both splits of a corpus as shards in data_dir; one line per split."""
  if sequence_length < 1:
    raise UserError("--sequence_length must be at least 1, got %d" % sequence_length)
  if workers is not None and workers < 1:
    raise UserError("--workers must be at least 1, got %d" % workers)
  for split in ("train", "eval"):
    started = time.time()
    manifest = split_shards(corpus, split, sequence_length, data_dir, workers,
                            other_lengths_ok=True)
    seconds = time.time() - started
    print("%s: %d windows of %d bytes in %d shards, %s (%.1f s)"
          % (split, manifest["windows"], sequence_length + 1, len(manifest["shards"]),
             manifest["dir"], seconds), file=out, flush=True)
