"""Corpora -> byte-window TFRecord shards -> a tf.data input_fn for TPUEstimator."""
from data.corpus import CorpusError, corpus_bytes, split
from data.input_fn import eval_steps, make_input_fn
from data.shards import read_manifest, write_shards

__all__ = ["CorpusError", "corpus_bytes", "eval_steps", "make_input_fn", "read_manifest",
           "split", "write_shards"]
