"""Autoregressive sampling by recomputing the whole window for every new byte."""
from mtf_compat import mtf, tf


def gumbel_noise(mesh, batch, generated, vocab, seed):
  """Gumbel(0, 1) noise [batch, generated, vocab], a function of the seed only, so
  every sampler draws the same noise for the k-th new byte of a row."""
  shape = [batch.size, generated.size, vocab.size]
  uniform = tf.random.stateless_uniform(shape, seed=[seed, 0], minval=1e-9, maxval=1.0)
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


def pick(x, dim, index):
  """x[..., index, ...] along dim, for an integer mtf index (broadcast over rows)."""
  at = mtf.cast(mtf.equal(mtf.range(x.mesh, dim, tf.int32), index), x.dtype)
  return mtf.reduce_sum(x * at, reduced_dim=dim)


def sample(model, context, tokens, prompt_length, num_bytes, temperature=1.0,
           top_k=0, seed=0):
  """Generates `num_bytes` bytes after each row's prompt.

  tokens: int32 [batch, length], row b holds its prompt in positions
  [0, prompt_length[b]) (1 ≤ prompt_length ≤ length). Once a row's window is full it
  slides left by one byte per new byte, so generation can run past the context.
  Returns int32 [batch, generated] with generated = num_bytes.
  """
  mesh = context.mesh
  length = context.length
  vocab = context.dims["vocab"]
  generated = mtf.Dimension("generated", num_bytes)
  noise = gumbel_noise(mesh, context.dims["batch"], generated, vocab, seed)
  positions = mtf.range(mesh, length, tf.int32)

  def body(step, tokens, filled, out):
    logits = mtf.cast(model.logits(tokens, context), tf.float32)
    new = next_byte(pick(logits, length, filled - 1), pick(noise, generated, step),
                    temperature, top_k, vocab)
    full = mtf.greater_equal(filled, length.size)
    tokens = mtf.where(full, mtf.shift(tokens, -1, length, wrap=False), tokens)
    write_at = mtf.minimum(filled, filled * 0 + (length.size - 1))
    tokens = mtf.where(mtf.equal(positions, write_at), new + tokens * 0, tokens)
    filled = mtf.minimum(filled + 1, filled * 0 + length.size)
    out = mtf.where(mtf.equal(mtf.range(mesh, generated, tf.int32), step),
                    new + out * 0, out)
    return step + 1, tokens, filled, out

  def cond(step, *unused):
    return mtf.less(step, num_bytes)

  step = mtf.constant(mesh, 0, dtype=tf.int32)
  out = mtf.zeros(mesh, mtf.Shape([context.dims["batch"], generated]), tf.int32)
  _, _, _, out = mtf.while_loop(cond, body, [step, tokens, prompt_length, out])
  return out
