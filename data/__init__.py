"""Corpora -> byte-window shards -> a tf.data input_fn for TPUEstimator.

The names below are imported on first use, so that a shard-writing worker process
(data/shards.py) imports this package without TensorFlow.
"""
import importlib

_HOMES = {"CorpusError": "data.errors", "corpus_bytes": "data.corpus",
          "split": "data.corpus", "sources": "data.corpus",
          "eval_steps": "data.input_fn", "make_input_fn": "data.input_fn",
          "read_manifest": "data.shards", "split_windows": "data.shards",
          "write_shards": "data.shards"}

__all__ = sorted(_HOMES)


def __getattr__(name):
  if name not in _HOMES:
    raise AttributeError("module 'data' has no attribute %r" % name)
  return getattr(importlib.import_module(_HOMES[name]), name)
