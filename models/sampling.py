"""Autoregressive sampling: incremental decoding from the layers' memories, and the
recomputation of the whole window per byte that it must equal."""
from layers.context import pick, write
from mtf_compat import mtf, tf


def gumbel_noise(mesh, batch, generated, vocab, seed):
  """Gumbel(0, 1) noise [batch, generated, vocab], a function of the seed only, so
  every sampler draws the same noise for the k-th new byte of a row."""
  shape = [batch.size, generated.size, vocab.size]
  # An explicit algorithm: "auto_select" picks Philox on CPU and ThreeFry on TPU, so
  # one seed would give other samples there.
  uniform = tf.random.stateless_uniform(shape, seed=[seed, 0], minval=1e-9, maxval=1.0,
                                        alg="philox")
  return mtf.import_tf_tensor(mesh, -tf.math.log(-tf.math.log(uniform)),
                              mtf.Shape([batch, generated, vocab]))


def next_byte(logits, noise, temperature, top_k, vocab):
  """argmax(logits / T + gumbel) over bytes: a sample from softmax(logits / T).

  logits, noise: float32 [batch, vocab]. temperature 0 is greedy (argmax logits);
  top_k > 0 keeps only the k most likely bytes.
  """
  if top_k:
    k_dim = mtf.Dimension("top_k", top_k)
    top_values, _ = mtf.top_k(logits, vocab, k_dim)
    kth_largest = mtf.reduce_min(top_values, reduced_dim=k_dim)
    logits = mtf.where(mtf.less(logits, kth_largest), logits * 0.0 - 1e9, logits)
  if temperature:
    logits = logits * (1.0 / temperature) + noise
  return mtf.argmax(logits, vocab)


class Sampler:
  """The state both samplers share: the model, the noise and the output buffer."""

  def __init__(self, model, context, num_bytes, temperature, top_k, seed):
    self.model = model
    self.context = context
    self.length = context.length
    self.vocab = context.dims["vocab"]
    self.generated = mtf.Dimension("generated", num_bytes)
    self.noise = gumbel_noise(context.mesh, context.dims["batch"], self.generated,
                              self.vocab, seed)
    self.temperature = temperature
    self.top_k = top_k

  def next_byte(self, logits, index):
    """Byte `index` (per row) of the output, from logits [batch, vocab]."""
    return next_byte(mtf.cast(logits, tf.float32), pick(self.noise, self.generated, index),
                     self.temperature, self.top_k, self.vocab)

  def empty_output(self):
    return mtf.zeros(self.context.mesh,
                     mtf.Shape([self.context.dims["batch"], self.generated]), tf.int32)

  def recompute(self, tokens, filled, first, out):
    """Recomputes the whole window for every byte, from byte `first` of each row on.

    tokens holds `filled` bytes per row; once a row's window is full it slides left by
    one byte per new byte.
    """
    length, generated = self.length, self.generated

    def body(step, tokens, filled, out):
      logits = self.model.logits(tokens, self.context)
      index = first + step
      new = self.next_byte(pick(logits, length, filled - 1), index)
      full = mtf.greater_equal(filled, length.size)
      tokens = mtf.where(full, mtf.shift(tokens, -1, length, wrap=False), tokens)
      tokens = write(tokens, length, mtf.minimum(filled, length.size - 1), new)
      filled = mtf.minimum(filled + 1, length.size)
      return step + 1, tokens, filled, write(out, generated, index, new)

    def cond(step, *unused):
      return mtf.less(step, generated.size - mtf.reduce_min(first))

    step = mtf.constant(self.context.mesh, 0, dtype=tf.int32)
    return mtf.while_loop(cond, body, [step, tokens, filled, out])[3]

  def decode(self, tokens, prompt_length, out, past_the_context=False):
    """Decodes one position per step for every row while the window has room.

    A prefill over the prompts records each layer's memories (recurrent layers: their
    state before the first step, the shortest prompt's last byte); step p then feeds every
    row its byte at p (its prompt's while p is inside it) and updates the memories at
    p alone, so each byte costs the same whatever p is. Returns the window of the
    last `length` bytes and the output, holding bytes [0, length - prompt_length].
    past_the_context: keep stepping past the window until every byte is out (for a model
    whose decoding state does not grow with the position, GPT.decodes_past_the_context);
    then the returned window is None.
    """
    context, length, generated = self.context, self.length, self.generated
    start = mtf.reduce_min(prompt_length) - 1
    context.start_prefill(first_step=start)
    self.model.logits(tokens, context)  # only its memories are used
    memories = context.memories

    def body(position, current, tokens, out, *memories):
      context.start_step(position, memories)
      logits = self.model.logits(current, context)
      index = position - prompt_length + 1  # < 0 inside the prompt: nothing written
      new = self.next_byte(logits, index)
      inside_prompt = mtf.less(index, 0)
      following = mtf.where(inside_prompt, pick(tokens, length, position + 1), new)
      tokens = write(tokens, length, position + 1, following)  # none past the window
      return ([position + 1, following, tokens, write(out, generated, index, new)]
              + context.memories)

    last = mtf.reduce_max(prompt_length) + generated.size - 1
    if not past_the_context:
      last = mtf.minimum(last, length.size)

    def cond(position, *unused):
      return mtf.less(position, last)

    first = pick(tokens, length, start)
    _, _, tokens, out, *_ = mtf.while_loop(cond, body,
                                           [start, first, tokens, out] + memories)
    context.stop_decoding()
    if past_the_context:
      return None, out
    # The byte decoded at the last position is not in the window yet.
    latest = pick(out, generated, length.size - prompt_length)
    window = write(mtf.shift(tokens, -1, length, wrap=False), length, length.size - 1,
                   latest)
    return window, out


def sample(model, context, tokens, prompt_length, num_bytes, temperature=1.0,
           top_k=0, seed=0, incremental=True):
  """Generates `num_bytes` bytes after each row's prompt.

  tokens: int32 [batch, length], row b holds its prompt in positions
  [0, prompt_length[b]) (1 ≤ prompt_length ≤ length). Once a row's window is full it
  slides left by one byte per new byte, so generation can run past the context.
  incremental: decode from the layers' memories while the window has room. Past that,
  a new byte moves every byte to another position, so the window is recomputed per
  byte, which is how incremental=False samples from the start; both give the same
  bytes. A model whose layers are all recurrent and that has no position table
  (GPT.decodes_past_the_context) instead keeps decoding from its state past the
  window: each byte then depends on every byte before it, not on the last `length`.
  Returns int32 [batch, generated] with generated = num_bytes.
  """
  sampler = Sampler(model, context, num_bytes, temperature, top_k, seed)
  out = sampler.empty_output()
  if not incremental:
    return sampler.recompute(tokens, prompt_length, prompt_length * 0, out)
  if model.decodes_past_the_context():
    return sampler.decode(tokens, prompt_length, out, past_the_context=True)[1]
  window, out = sampler.decode(tokens, prompt_length, out)
  return sampler.recompute(window, prompt_length * 0 + context.length.size,
                           context.length.size - prompt_length + 1, out)
