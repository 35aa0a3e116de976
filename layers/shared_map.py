"""The shared seq² map, and the causal map operations every seq² token mixer uses."""
import gin

from layers import fused
from layers import variables
from mtf_compat import mtf

FORMS = ("mixer", "softmax")


def causal_map(w, context):
  """W ⊙ M: entries j > i are multiplied by 0, so they get exactly zero gradient."""
  return context.at_position(w) * context.causal_mask()


def causal_softmax(logits, context):
  """softmax_j(logits + log M) over memory_length (masked weights are exactly 0)."""
  return fused.softmax(context.at_position(logits) + context.causal_bias(),
                       context.memory_length, context)


def apply_map(a, x, context):
  """y_i = Σ_j a[.., i, j] x_j: x's positions become memory_length and are summed over.

  a is [.., length, memory_length] with no batch axis (a learned map) or with one (a map
  computed per example); its other axes (heads) must be axes of x.
  """
  return mtf.einsum([a, context.memory(x)], output_shape=x.shape)


@gin.configurable
class SharedMap:
  """One learned [length, memory_length] map W per layer, shared by every example,
  head and channel ("an attention tensor of seq² elements").

    form='mixer':   y_i = Σ_j (W ⊙ M)[i, j] x_j
    form='softmax': y_i = Σ_j softmax_j(W + log M)[i, j] x_j   (the Synthesizer form)

  length · memory_length parameters and no batch or heads axis, so the map costs length²
  memory instead of attention's batch · heads · length². No projections: the channel
  mixer that follows does all the mixing across channels.
  """

  def __init__(self, form="mixer"):
    if form not in FORMS:
      raise ValueError("SharedMap.form must be one of %s, got %r" % (FORMS, form))
    self.form = form

  def __call__(self, x, context):
    w = variables.seq_map(context, "map", [context.length, context.memory_length])
    if self.form == "mixer":
      a = causal_map(w, context)
    else:
      a = causal_softmax(w, context)
    return apply_map(a, x, context)
