"""Gin files and bindings: parsing with clear errors, and the copy kept in model_dir."""
import logging
import os

import gin

from mtf_compat import tf
from trainer.errors import UserError

GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "gin")
CONFIG_FILE = "config.gin"


class _QuietProbes(logging.Filter):
  """gin probes each search path for an include and logs every miss as an error; a
  real miss raises IOError, which parse() reports."""

  def filter(self, record):
    return not record.getMessage().startswith("Path not found")


logging.getLogger().addFilter(_QuietProbes())


def register_configurables():
  """Imports every module that defines gin configurables, so any binding resolves."""
  # pylint: disable=g-import-not-at-top,unused-import
  import layers  # noqa: F401
  import pkgutil
  import importlib
  for module in pkgutil.iter_modules(layers.__path__):
    importlib.import_module("layers." + module.name)
  import data.corpus  # noqa: F401  (enwik8.check_md5)
  import models  # noqa: F401
  import optimizers  # noqa: F401
  from trainer import run  # noqa: F401


def resolve_gin_file(path):
  """A gin file as given, or relative to the project's gin/ directory."""
  if tf.io.gfile.exists(path):
    return path
  for candidate in (os.path.join(GIN_DIR, path),
                    os.path.join(GIN_DIR, os.path.relpath(path, "gin"))):
    if os.path.exists(candidate):
      return candidate
  raise UserError("gin file %r does not exist" % path)


def first_line(e):
  text = str(e).strip().splitlines()
  return text[0] if text else type(e).__name__


def parse(gin_files=(), gin_params=(), base_config=None):
  """Parses (in order) a saved config, the gin files and the bindings."""
  register_configurables()
  gin.clear_config()
  gin.add_config_file_search_path(GIN_DIR)
  files = [resolve_gin_file(f) for f in gin_files]
  try:
    if base_config:
      gin.parse_config(base_config)
    for f in files:
      gin.parse_config_file(f)
  except (SyntaxError, ValueError, KeyError, TypeError, IOError) as e:
    raise UserError("gin: %s" % first_line(e))
  for param in gin_params:
    try:
      gin.parse_config(param)
    except (SyntaxError, ValueError, KeyError, TypeError) as e:
      raise UserError("gin binding %r: %s" % (param, first_line(e)))


def config_path(model_dir):
  return os.path.join(model_dir, CONFIG_FILE)


def saved_config(model_dir):
  path = config_path(model_dir)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return f.read()


def save(model_dir):
  """Keeps the whole parsed config, so later commands need only --model_dir."""
  tf.io.gfile.makedirs(model_dir)
  with tf.io.gfile.GFile(config_path(model_dir) + ".tmp", "w") as f:
    f.write(gin.config_str())
  tf.io.gfile.rename(config_path(model_dir) + ".tmp", config_path(model_dir),
                     overwrite=True)
