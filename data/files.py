"""File access for local paths and gs:// (or any URL tf.io.gfile knows).

Local paths use Python's own files; only URLs import TensorFlow (tf.io.gfile), so a
preparation worker process on local data starts in a fraction of a second and a few
MB instead of TensorFlow's 3 s and 0.5 GB.
"""
import os


def is_url(path):
  return "://" in path


def gfile():
  from mtf_compat import tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def open_file(path, mode="rb"):
  return gfile().GFile(path, mode) if is_url(path) else open(path, mode)


def size(path):
  return gfile().stat(path).length if is_url(path) else os.path.getsize(path)


def exists(path):
  return gfile().exists(path) if is_url(path) else os.path.exists(path)


def isdir(path):
  return gfile().isdir(path) if is_url(path) else os.path.isdir(path)


def listdir(path):
  if is_url(path):
    return [name.rstrip("/") for name in gfile().listdir(path)]  # gs:// marks folders
  return os.listdir(path)


def makedirs(path):
  if is_url(path):
    gfile().makedirs(path)
  else:
    os.makedirs(path, exist_ok=True)


def remove(path):
  if is_url(path):
    gfile().remove(path)
  else:
    os.remove(path)


def rename(source, target):
  """Replaces target: atomic for local files (one rename), a copy on object stores."""
  if is_url(source):
    gfile().rename(source, target, overwrite=True)
  else:
    os.replace(source, target)


def check_readable(path):
  """Opens the file and reads one byte, so a permission error surfaces here."""
  with open_file(path) as f:
    f.read(1)
