"""`run`: the gin-configurable settings of one training run (`run.train_steps`, ...)."""
import dataclasses
import math
import os
from typing import Any, Optional

import gin

from trainer import mesh
from trainer.errors import UserError


@gin.configurable("run")
@dataclasses.dataclass
class Run:
  """Run control, bound in gin as `run.<name>`.

  corpus: 'shakespeare' or a path to a text file or directory, or a mixture
    {corpus: weight} sampled in proportion to the weights, e.g.
    {'shakespeare': 0.3, '/data/web': 0.7}.
  mesh_shape / layout_rules: e.g. "data:2,model:2" / "batch:data,heads:model".
  optimizer: an optimizer class (`@Adam`, `@SM3`), built with the scheduled
    learning rate.
  eval_every: also evaluate held-out bpc every this many steps (0: only at the end).
  eval_steps: held-out batches per evaluation (None: the whole held-out split).
  on_nonfinite: 'skip' drops an update whose loss or gradient norm is NaN/Inf;
    'stop' also ends training with an error naming the step.
  activation_dtype: 'float32' or 'bfloat16' (master weights and optimizer state stay
    float32).
  microbatches: splits each step's batch into this many serial microbatches whose
    gradients are summed (same update, a fraction of the activation memory).
  intra_op_threads / inter_op_threads: TF's thread pools on CPU; 0 (the default) is one
    thread per core this process may use, so a 2-core and a 96-core host (or a
    container's CPU set) each use what they have.
  nan_at_step: poisons that step's gradient with NaN (to test the guard); -1 never.
  """
  train_steps: int = 1000
  batch_size: int = 32
  sequence_length: int = 128
  steps_per_checkpoint: int = 200
  mesh_shape: str = ""
  layout_rules: str = ""
  seed: int = 0
  use_tpu: bool = False
  corpus: Any = "shakespeare"
  optimizer: Any = None
  eval_every: int = 0
  eval_steps: Optional[int] = None
  log_every: int = 1
  on_nonfinite: str = "skip"
  activation_dtype: str = "float32"
  iterations_per_loop: int = 100
  keep_checkpoints: int = 5
  data_dir: Optional[str] = None
  microbatches: int = 1
  intra_op_threads: int = 0
  inter_op_threads: int = 0
  nan_at_step: int = -1
  # Derived once from the fields above and passed down with them.
  layout: mesh.Layout = dataclasses.field(init=False, repr=False, compare=False)
  corpora: tuple = dataclasses.field(init=False, repr=False, compare=False)

  def __post_init__(self):
    for name in ("train_steps", "batch_size", "sequence_length", "steps_per_checkpoint",
                 "log_every", "iterations_per_loop", "keep_checkpoints", "microbatches"):
      value = getattr(self, name)
      if not isinstance(value, int) or value <= 0:
        raise UserError("run.%s must be a positive integer, got %r" % (name, value))
    if self.on_nonfinite not in ("skip", "stop"):
      raise UserError("run.on_nonfinite must be 'skip' or 'stop', got %r"
                      % self.on_nonfinite)
    if self.activation_dtype not in ("float32", "bfloat16"):
      raise UserError("run.activation_dtype must be 'float32' or 'bfloat16', got %r"
                      % self.activation_dtype)
    if self.batch_size % self.microbatches:
      raise UserError("run.microbatches=%d does not divide run.batch_size=%d"
                      % (self.microbatches, self.batch_size))
    self.layout = mesh.parse(self.mesh_shape, self.layout_rules)
    self.corpora = corpus_mixture(self.corpus)
    if self.optimizer is None:
      import optimizers  # pylint: disable=g-import-not-at-top
      self.optimizer = optimizers.Adam

  @property
  def tokens_per_step(self):
    return self.batch_size * self.sequence_length


def corpus_mixture(corpus):
  """run.corpus -> ((corpus, weight), ...): one corpus of weight 1, or a mixture."""
  if isinstance(corpus, str):
    return ((corpus, 1.0),)
  if not isinstance(corpus, dict) or not corpus:
    raise UserError("run.corpus must be a corpus ('shakespeare' or a path) or a dict "
                    "{corpus: weight}, got %r" % (corpus,))
  seen = {}
  for name, weight in corpus.items():
    if not isinstance(name, str):
      raise UserError("run.corpus: %r is not a corpus name or path" % (name,))
    if (isinstance(weight, bool) or not isinstance(weight, (int, float))
        or not math.isfinite(weight) or weight <= 0):
      raise UserError("run.corpus: the weight of %r must be a number > 0, got %r"
                      % (name, weight))
    key = same_corpus(name)
    if key in seen:
      raise UserError("run.corpus names one corpus twice: %r and %r" % (seen[key], name))
    seen[key] = name
  return tuple((name, float(weight)) for name, weight in corpus.items())


def same_corpus(name):
  """One spelling per corpus: 'data/web/', './data/web' and its absolute path agree."""
  if "://" in name:
    return name.rstrip("/")
  if name == "shakespeare":
    return name
  return os.path.realpath(name)
