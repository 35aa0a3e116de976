"""gMLP: a feed-forward block whose hidden units are gated by a causal seq² map."""
import gin

from layers import fused
from layers import variables
from layers.feed_forward import activation
from layers.norm import LayerNorm
from layers.shared_map import apply_map, causal_map
from mtf_compat import mtf, tf

GATES = ("identity", "tanh", "sigmoid")


@gin.configurable
class GMLP:
  """The gMLP block of Liu et al. 2021 ("Pay Attention to MLPs"), causal.

    z = gelu(x U),  U [d_model, d_ff],  d_ff = multiplier · d_model
    split=True (the paper):  (u, v) = the two channel halves of z
    split=False:             u = v = z  (z is gated by a mix of itself)
    s = (W ⊙ M) · LayerNorm(v) + b,  W [length, memory_length] ≈ 0,  b [length] = 1
    y = (u ⊙ f(s)) V,  V [d_ff / 2 (or d_ff), d_model],  f = gate

  At init s ≈ 1, so the block starts as a plain feed-forward layer (the paper's init).
  gate='tanh' is the thread's "tanh-constrained gMLP"; 'identity' is the paper's.
  The halves come from two [d_model, d_ff / 2] projections ("in_u", "in_v"), which is U
  split by columns, so a layout may split d_ff without slicing it. The residual around
  the block supplies the paper's input norm and shortcut; GELU and d_ff = 6 · d_model
  follow the paper. Used as the token mixer with GPT.channel_mixer = None.
  """

  def __init__(self, multiplier=6, split=True, gate="identity"):
    if gate not in GATES:
      raise ValueError("GMLP.gate must be one of %s, got %r" % (GATES, gate))
    self.multiplier = multiplier
    self.split = split
    self.gate = gate

  def __call__(self, x, context):
    d_model = x.shape.get_dim_by_name("d_model")
    width = d_model.size * self.multiplier
    if self.split and width % 2:
      raise ValueError("GMLP: d_ff = %d cannot be split in halves" % width)
    d_ff = mtf.Dimension("d_ff", width // 2 if self.split else width)

    def project_in(name):
      w = variables.weight(context, name, [d_model, d_ff], ["d_model"])
      return fused.gelu(mtf.einsum([x, w], reduced_dims=[d_model]), context)

    if self.split:
      u, v = project_in("in_u"), project_in("in_v")
    else:
      u = v = project_in("in")
    with tf.variable_scope("gate_norm"):
      v = LayerNorm(dim_name="d_ff")(v, context)
    w = variables.seq_map(context, "spatial", [context.length, context.memory_length])
    b = variables.variable(context, "spatial_bias", [context.length],
                           tf.ones_initializer(), variables.BIAS)
    s = apply_map(causal_map(w, context), v, context) + context.at_position(b)
    gated = u * activation(self.gate, context)(s)
    w_out = variables.weight(context, "out", [d_ff, d_model], ["d_ff"],
                             output_projection=True)
    return mtf.einsum([gated, w_out], reduced_dims=[d_ff])
