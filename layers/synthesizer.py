"""Synthesizer: attention whose map is synthesized instead of computed from QKᵀ."""
import gin

from layers import variables
from layers.attention import output_projection, project_to_heads, split_heads
from layers.shared_map import apply_map, causal_softmax
from mtf_compat import mtf

KINDS = ("dense", "random")


@gin.configurable
class Synthesizer:
  """Synthesizer attention (Tay et al. 2020), causal, per head:

    dense:   B[h, i, :] = relu(x_i W1[:, h]) W2[h]   (position i predicts its own row
             from its own features), W1 [d_model, heads, d_head],
             W2 [heads, d_head, memory_length]
    random:  B = R, a learned [heads, length, memory_length] logit map (role SEQ_MAP)
    A = softmax_j(B + log M),  y = Σ_heads (A · x W_v) W_o

  The dense MLP's hidden width per head is d_head (so W1 is the size of a query
  projection) and, like every projection here, it has no biases.
  """

  def __init__(self, kind="dense", heads=4):
    if kind not in KINDS:
      raise ValueError("Synthesizer.kind must be one of %s, got %r" % (KINDS, kind))
    self.kind = kind
    self.heads = heads

  def __call__(self, x, context):
    d_model = x.shape.get_dim_by_name("d_model")
    heads, d_head = split_heads(d_model, self.heads, None)
    if self.kind == "dense":
      w2 = variables.weight(context, "w2", [heads, d_head, context.memory_length],
                            ["d_head"])
      hidden = mtf.relu(project_to_heads(x, context, "w1", heads, d_head))
      logits = mtf.einsum([hidden, w2], reduced_dims=[d_head])
    else:
      logits = variables.seq_map(context, "r",
                                 [heads, context.length, context.memory_length])
    v = project_to_heads(x, context, "v", heads, d_head)
    o = apply_map(causal_softmax(logits, context), v, context)
    return output_projection(o, context, heads, d_head, d_model)
