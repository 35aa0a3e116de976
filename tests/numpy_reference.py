"""Plain numpy versions of the models' formulas, written from the papers and
independently of the mtf code they check: LayerNorm (Ba et al. 2016), GELU's tanh form
(Hendrycks & Gimpel 2016), causal multi-head attention scaled by d_head^-½ (Vaswani et
al. 2017), the pre-norm GPT (Radford et al. 2019)."""
import math

import numpy as np


def causal_mask(n):
  return np.tril(np.ones([n, n]))


def layer_norm(x, scale, bias, eps=1e-5):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * scale + bias


def softmax(x, axis=-1):
  e = np.exp(x - x.max(axis, keepdims=True))
  return e / e.sum(axis, keepdims=True)


def gelu(x):  # the tanh approximation, as mtf.gelu
  return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def attention(x, wq, wk, wv, wo):
  """x [b, n, d]; wq/wk/wv [d, h, k]; wo [h, k, d]."""
  q = np.einsum("bnd,dhk->bhnk", x, wq)
  k = np.einsum("bnd,dhk->bhnk", x, wk)
  v = np.einsum("bnd,dhk->bhnk", x, wv)
  logits = np.einsum("bhik,bhjk->bhij", q, k) / math.sqrt(wq.shape[-1])
  logits = np.where(causal_mask(x.shape[1]) > 0, logits, -1e9)
  o = np.einsum("bhij,bhjk->bhik", softmax(logits), v)
  return np.einsum("bhnk,hkd->bnd", o, wo)


def rotary(x, base=10000.0):
  """x [.., n, k] rotated by position: pairs (i, i + k/2), angle n · base^(-2i/k)."""
  n, k = x.shape[-2], x.shape[-1]
  angle = np.arange(n)[:, None] * base ** (-2.0 * np.arange(k // 2) / k)[None]
  cos, sin = np.cos(angle), np.sin(angle)
  x1, x2 = x[..., :k // 2], x[..., k // 2:]
  return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def alibi(heads, n):
  """-m_h (i - j) [heads, n, n], m_h = 2^(-8h/heads), h = 1..heads."""
  slopes = 2.0 ** (-8.0 * np.arange(1, heads + 1) / heads)
  i, j = np.indices([n, n])
  return -slopes[:, None, None] * (i - j)[None]


def attention_with_positions(x, wq, wk, wv, wo, encoding):
  """attention() with rotary queries and keys, or ALiBi biases on its logits."""
  q, k, v = (np.einsum("bnd,dhk->bhnk", x, w) for w in (wq, wk, wv))
  if encoding == "rotary":
    q, k = rotary(q), rotary(k)
  logits = np.einsum("bhik,bhjk->bhij", q, k) / math.sqrt(wq.shape[-1])
  if encoding == "alibi":
    logits = logits + alibi(wq.shape[1], x.shape[1])[None]
  logits = np.where(causal_mask(x.shape[1]) > 0, logits, -1e9)
  o = np.einsum("bhij,bhjk->bhik", softmax(logits), v)
  return np.einsum("bhnk,hkd->bnd", o, wo)


def feed_forward(x, w_in, w_out, act=gelu):
  return act(x @ w_in) @ w_out


def gpt_logits(tokens, v, num_layers):
  """The pre-norm Transformer GPT; v maps variable names to values."""
  x = v["byte_embedding"][tokens] + v["position_embedding"][None, :tokens.shape[1]]
  for i in range(num_layers):
    p = "block_%d/" % i
    t = p + "token_mixing/"
    h = layer_norm(x, v[t + "norm/scale"], v[t + "norm/bias"])
    x = x + attention(h, *(v[t + "mixer/" + n] for n in "qkvo"))
    c = p + "channel_mixing/"
    h = layer_norm(x, v[c + "norm/scale"], v[c + "norm/bias"])
    x = x + feed_forward(h, v[c + "mixer/in"], v[c + "mixer/out"])
  x = layer_norm(x, v["final_norm/scale"], v["final_norm/bias"])
  return x @ v["logits"]


def cross_entropy(logits, targets):
  """Mean -log p(target) in nats."""
  z = logits.max(-1, keepdims=True)
  log_probs = logits - z - np.log(np.exp(logits - z).sum(-1, keepdims=True))
  return -np.take_along_axis(log_probs, targets[..., None], -1).mean()
