"""The byte-level GPT: embedding -> blocks -> norm -> logits, and its loss."""
import functools
import math

import gin

from layers import variables
from layers.attention import Attention
from layers.feed_forward import FeedForward
from layers.norm import LayerNorm
from layers.residual import Residual
from layers.short_conv import ShortConvThen
from layers import residual_stream as residual_stream_lib
from mtf_compat import mtf, tf

VOCAB_SIZE = 256  # UTF-8 bytes
POSITIONS = ("learned", "none")


@gin.configurable
class GPT:
  """logits = norm(blocks(E[bytes] + P[positions])) · W_logits.

  positions: 'learned' adds the learned table P [length, d_model]; 'none' adds nothing
  (the mixers carry position: rotary or ALiBi attention, decays, causality itself).

  Each block is residual(token_mixer) then residual(channel_mixer); the mixers and the
  residual form are gin-configurable classes, instantiated once per block.
  short_conv: when > 0, the token mixer reads its (normed) input through a causal
  depthwise convolution over that many positions (layers/short_conv.py).
  recompute_blocks: keep only each block's input for the backward pass and recompute
  the rest (mtf.recompute_grad): activation memory of one block instead of all.

  residual_stream: how the residual branches (token mixing, then channel mixing, per
  block) are summed (layers/residual_stream.py):
    'standard'  x ← x + f(x) for each branch f;
    'revnet'    two streams, y1 = x1 + F(x2), y2 = x2 + G(y1), output (y1 + y2)/2;
    'momentum'  v ← γ·v + (1 − γ)·f(x), x ← x + v, with γ = `momentum`.
  Under 'revnet' and 'momentum', training rebuilds each branch's input from its output
  in the backward pass, so only the last block's activations are kept
  (`invert_in_backward=False` leaves the same forward to plain autodiff instead: tests
  compare the two). Decoding and evaluation run the forward pass alone.
  """

  def __init__(self, num_layers=4, d_model=256, token_mixer=Attention,
               channel_mixer=FeedForward, residual=Residual, embedding_stddev=0.02,
               z_loss=0.0, recompute_blocks=False, positions="learned",
               residual_stream="standard", momentum=0.9, invert_in_backward=True,
               short_conv=0):
    if positions not in POSITIONS:
      raise ValueError("GPT.positions must be one of %s, got %r" % (POSITIONS, positions))
    if residual_stream not in residual_stream_lib.STREAMS:
      raise ValueError("GPT.residual_stream must be one of %s, got %r"
                       % (residual_stream_lib.STREAMS, residual_stream))
    if recompute_blocks and residual_stream != "standard":
      raise ValueError("GPT.recompute_blocks needs GPT.residual_stream = 'standard' "
                       "(the %r stream rebuilds its activations itself)" % residual_stream)
    if short_conv and (not isinstance(short_conv, int) or short_conv < 2):
      raise ValueError("GPT.short_conv must be 0 (none) or a number of taps >= 2, got %r"
                       % (short_conv,))
    if residual_stream == "momentum" and not 0.0 < momentum < 1.0:
      raise ValueError("GPT.momentum must be in (0, 1), got %r" % (momentum,))
    self.num_layers = num_layers
    self.d_model = d_model
    self.token_mixer = token_mixer
    self.channel_mixer = channel_mixer
    self.residual = residual
    self.embedding_stddev = embedding_stddev
    self.z_loss = z_loss
    self.recompute_blocks = recompute_blocks
    self.positions = positions
    self.residual_stream = residual_stream
    self.momentum = momentum
    self.invert_in_backward = invert_in_backward
    self.short_conv = short_conv

  def logits(self, tokens, context):
    """tokens: int32 [batch, length] -> logits [batch, length, vocab].

    When the context is decoding, tokens is [batch] (the bytes at its position) and
    the logits are [batch, vocab].
    """
    d_model = context.dims["d_model"]
    vocab = context.dims["vocab"]
    context.losses = []  # those of this pass alone (see added_loss)
    init = variables.normal_initializer(self.embedding_stddev)
    embedding = variables.variable(context, "byte_embedding", [vocab, d_model], init,
                                   variables.EMBEDDING)
    x = mtf.gather(embedding, tokens, vocab)
    if self.positions == "learned":
      table = variables.variable(context, "position_embedding",
                                 [context.length, d_model], init, variables.EMBEDDING)
      x += context.at_position(table)
    branches_per_block = 1 if self.channel_mixer is None else 2
    context.residual_branches = self.num_layers * branches_per_block
    if self.residual_stream == "standard":
      for i in range(self.num_layers):
        context.layer_index = i
        with tf.variable_scope("block_%d" % i):
          if self.recompute_blocks and context.train:
            x = self.recomputed_block(x, context)
          else:
            x = self.block(x, context)
    else:
      x = self.reversible_blocks(x, context)
    with tf.variable_scope("final_norm"):
      x = LayerNorm()(x, context)
    w = variables.weight(context, "logits", [d_model, vocab], ["d_model"],
                         role=variables.OUTPUT)
    return mtf.einsum([x, w], reduced_dims=[d_model])

  def decodes_past_the_context(self):
    """Whether decoding may run past `length` from the layers' states: no position
    table, and a token mixer whose decoding state does not grow with the position."""
    return self.positions == "none" and getattr(self.token_mixer, "recurrent", False)

  def recomputed_block(self, x, context):
    """The block under mtf.recompute_grad. Tensors made inside it cannot be used
    outside, so the losses its layers add leave it as outputs too."""

    def block(x):
      start = len(context.losses)
      y = self.block(x, context)
      added = context.losses[start:]
      del context.losses[start:]  # the backward pass's recomputation adds them again
      return tuple([y] + added) if added else y

    outputs = mtf.recompute_grad(block, [x])
    if isinstance(outputs, mtf.Tensor):
      return outputs
    context.losses.extend(outputs[1:])
    return outputs[0]

  def new_token_mixer(self):
    mixer = self.token_mixer()
    return ShortConvThen(mixer, self.short_conv) if self.short_conv else mixer

  def block(self, x, context):
    x = self.residual()(x, self.new_token_mixer(), context, "token_mixing")
    if self.channel_mixer is not None:  # gMLP blocks have no separate channel mixer
      x = self.residual()(x, self.channel_mixer(), context, "channel_mixing")
    return x

  def branches(self, context):
    """The residual branches f(x) (no skip) in order: block i's token mixing, then its
    channel mixing, each in block i's variable scope."""
    def branch(i, new_mixer, name, x):
      context.layer_index = i
      with tf.variable_scope("block_%d" % i):
        return self.residual().branch(x, new_mixer(), context, name)
    out = []
    for i in range(self.num_layers):
      out.append(functools.partial(branch, i, self.new_token_mixer, "token_mixing"))
      if self.channel_mixer is not None:
        out.append(functools.partial(branch, i, self.channel_mixer, "channel_mixing"))
    return out

  def reversible_blocks(self, x, context):
    """The blocks under the 'revnet' or 'momentum' stream; inverted in the backward
    pass only when training (decoding has no backward pass)."""
    invert = context.train and self.invert_in_backward
    added = len(context.losses)
    if self.residual_stream == "revnet":
      x = residual_stream_lib.revnet(x, self.branches(context), invert)
    else:
      x = residual_stream_lib.momentum(x, self.branches(context), self.momentum, invert)
    if invert and len(context.losses) > added:
      # A loss made inside the inverted branches has no path out of their custom
      # gradient: its gradient would be lost, so training stops here instead.
      raise ValueError(
          "GPT.residual_stream = %r cannot train a layer that adds its own loss (%s): "
          "use GPT.residual_stream = 'standard'"
          % (self.residual_stream, context.losses[added].name.split(":")[0]))
    return x

  def loss_terms(self, logits, targets, context, weights=None):
    """(cross-entropy, z-term), mtf scalars in nats:

      cross-entropy = mean over bytes of logsumexp(logits) − logit[target]
        (with weights [batch, length]: Σ w·CE / Σ w, the bytes a task's answers mark)
      z-term = z_loss · mean over bytes of logsumexp(logits)²   (0 when z_loss = 0)
    The optimised loss is their sum; bits per byte are cross-entropy / ln 2 only, so a
    reported bpc never counts the z-term.
    """
    vocab = context.dims["vocab"]
    logits = mtf.cast(logits, tf.float32)
    log_z = mtf.reduce_logsumexp(logits, vocab)
    target_logit = mtf.reduce_sum(
        logits * mtf.one_hot(targets, vocab, dtype=tf.float32), reduced_dim=vocab)
    if weights is None:
      cross_entropy = mtf.reduce_mean(log_z - target_logit)
    else:
      cross_entropy = (mtf.reduce_sum((log_z - target_logit) * weights)
                       / mtf.reduce_sum(weights))
    z_term = self.z_loss * mtf.reduce_mean(mtf.square(log_z)) if self.z_loss else (
        mtf.zeros_like(cross_entropy))
    return cross_entropy, z_term

  def added_loss(self, context):
    """The sum of the losses the layers added (context.add_loss) in the last `logits`
    call: a mixture of experts' load-balancing losses, weights included; 0 without.
    Optimised with the cross-entropy and z-term, never counted in a reported bpc."""
    if not context.losses:
      return mtf.zeros(context.mesh, mtf.Shape([]))
    return mtf.add_n(context.losses)

  def loss(self, logits, targets, context, weights=None):
    """The optimised loss: cross-entropy + z_loss · mean(logsumexp²), in nats."""
    cross_entropy, z_term = self.loss_terms(logits, targets, context, weights)
    return cross_entropy + z_term if self.z_loss else cross_entropy


def nats_to_bits(nats):
  return nats / math.log(2.0)
