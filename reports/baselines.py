"""mtfzoo baselines: the held-out bits per byte that general-purpose compressors and a
smoothed byte n-gram model reach on the split the models are evaluated on.

A model that does not beat these has learned byte statistics, not used context. Each
figure is bits per held-out byte, bpc = 8 · (compressed bytes) / (held-out bytes):

  <compressor>              the held-out bytes compressed alone
  <compressor>_conditioned  size(compress(train + held-out)) − size(compress(train)):
                            the cost of the held-out bytes to a compressor that has
                            read the training split (gzip sees only its last 32 KiB,
                            bzip2 its 900 kB block, xz its whole 64 MiB window)
  ngram                     interpolated Kneser-Ney byte n-gram (KneserNeyBytes) fitted on
                            the training split, its order the best on a slice of it
"""
import bz2
import json
import lzma
import time
import zlib

import gin
import numpy as np

import data
from mtf_compat import tf
from trainer.errors import UserError

BASELINES_FILE = "baselines.json"
COMPRESSORS = {
    "gzip": lambda b: zlib.compress(b, 9),
    "bzip2": lambda b: bz2.compress(b, 9),
    "lzma": lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME),
}
# How compare and table.md name each figure of a record.
LABELS = {
    "gzip": "gzip -9", "gzip_conditioned": "gzip -9 given train",
    "bzip2": "bzip2 -9", "bzip2_conditioned": "bzip2 -9 given train",
    "lzma": "xz -9e", "lzma_conditioned": "xz -9e given train",
    "ngram": "byte n-gram (Kneser-Ney)",
}


def compressor_bpc(name, train, heldout):
  """(bpc of the held-out bytes alone, bpc given the training split)."""
  compress = COMPRESSORS[name]
  alone = len(compress(heldout))
  conditioned = len(compress(train + heldout)) - len(compress(train))
  return 8.0 * alone / len(heldout), 8.0 * conditioned / len(heldout)


@gin.configurable
class KneserNeyBytes:
  """Interpolated Kneser-Ney over bytes with the modified discounts of Chen & Goodman
  (1998, "An empirical study of smoothing techniques for language modeling", §3.5).

  For an order-n model, a context h of k − 1 ≤ n − 1 bytes, h' = h without its first
  byte, and a byte w:

    P_k(w | h) = (c_k(hw) − D_k(c_k(hw))) / c_k(h·)  +  γ_k(h) · P_{k−1}(w | h')
    γ_k(h)     = (D_k1 · N1(h·) + D_k2 · N2(h·) + D_k3+ · N3+(h·)) / c_k(h·)
    P_0(w)     = 1/256

  c_k is the raw count for k = n and the continuation count N1+(·hw), the number of
  distinct bytes seen before hw, for k < n; c_k(h·) = Σ_w c_k(hw); Nr(h·) counts the
  bytes w with c_k(hw) = r (r ≥ 3 for N3+); D_k(0) = 0. With n_r the number of k-grams
  of count r, Y = n1/(n1 + 2 n2) and D_kr = r − (r+1) · Y · n_{r+1}/n_r, clipped to
  [0.1, r − 0.1] so that every byte keeps some probability where the counts are
  degenerate (all large, as on a small alphabet; there n_{r+1}/n_r with n_r = 0 counts
  as 0, and Y = ½ when n1 = n2 = 0). A context never seen (or whose
  c_k(h·) = 0), or longer than the bytes before a position, falls back to P_{k−1}.
  Σ_w P_k(w | h) = 1 for every h, since Σ_w D_k(c_k(hw)) = γ_k(h) · c_k(h·).

  n-grams get exact integer ids, built one byte at a time to the left:
  id_k(b s) = rank of (b · |k−1-grams| + id_{k−1}(s)) among the corpus's k-grams.
  """

  def __init__(self, max_order=10):
    if max_order < 1:
      raise ValueError("KneserNeyBytes.max_order must be >= 1, got %r" % max_order)
    self.max_order = max_order

  def fit(self, text):
    """Counts every k-gram of `text` (bytes) for k = 1..max_order.

    Each order sorts the k-gram positions by key in O(n): the positions sorted by
    id_{k−1} one byte to the right, then a stable (radix) sort on the first byte.
    """
    b = np.frombuffer(text, np.uint8)
    # Per order k (index k; index 0 is the empty string, one id):
    self.keys = [np.zeros(1, np.int64)]  # sorted keys b·|k−1-grams| + id_{k−1}(suffix)
    self.raw = [None]                    # c(g)
    self.context = [None]                # id_{k−1} of g's first k − 1 bytes
    self.continuation = []               # N1+(·g), filled one order later
    ids = np.zeros(len(b) + 1, np.int64)  # id_{k−1} of the (k−1)-gram at each position
    by_id = np.arange(len(b) + 1)         # those positions, sorted by id
    for k in range(1, self.max_order + 1):
      n = len(b) - k + 1
      if n <= 0:
        break
      num_shorter = len(self.keys[k - 1])
      starts = by_id[by_id >= 1] - 1
      starts = starts[np.argsort(b[starts], kind="stable")]
      key = b[starts].astype(np.int64) * num_shorter + ids[starts + 1]
      new = np.ones(n, bool)
      new[1:] = key[1:] != key[:-1]
      first = np.flatnonzero(new)
      keys = key[first]
      self.keys.append(keys)
      self.raw.append(np.diff(np.append(first, n)))
      self.context.append(ids[starts[first]])
      ids = np.empty(n, np.int64)
      ids[starts] = np.cumsum(new) - 1
      self.continuation.append(np.bincount(keys % num_shorter, minlength=num_shorter))
      by_id = starts
    self.orders = len(self.keys) - 1
    self.continuation.append(np.zeros(len(self.keys[-1]), np.int64))  # never used
    self.stats = {}
    return self

  def order_stats(self, k, raw):
    """(c(h·), N1(h·), N2(h·), N3+(h·)) per context id, and D(0..3) of order k."""
    if (k, raw) not in self.stats:
      counts = self.raw[k] if raw else self.continuation[k]
      contexts, size = self.context[k], len(self.keys[k - 1])
      per_context = [np.bincount(contexts, weights=w, minlength=size)
                     for w in (counts, counts == 1, counts == 2, counts >= 3)]
      n = [np.sum(counts == r) for r in range(5)]
      y = n[1] / (n[1] + 2.0 * n[2]) if n[1] + n[2] else 0.5
      discounts = np.zeros(4)
      for r in (1, 2, 3):
        ratio = n[r + 1] / n[r] if n[r] else 0.0
        discounts[r] = np.clip(r - (r + 1) * y * ratio, 0.1, r - 0.1)
      self.stats[(k, raw)] = (per_context, discounts)
    return self.stats[(k, raw)]

  def lookup(self, k, key, valid):
    """Ids of the order-k keys, -1 where absent or not valid (queries sorted first:
    numpy's binary search then starts from the previous answer, far fewer misses)."""
    keys = self.keys[k]
    by_key = np.argsort(key)
    index = np.empty(len(key), np.int64)
    index[by_key] = np.searchsorted(keys, key[by_key])
    index = np.minimum(index, len(keys) - 1)
    return np.where(valid & (keys[index] == key), index, -1)

  def mix(self, k, raw, gram, context, active, lower):
    """P_k from P_{k−1} = lower (the class docstring), lower where inactive."""
    (total, n1, n2, n3), discounts = self.order_stats(k, raw)
    seen = np.maximum(context, 0)
    counts = (self.raw[k] if raw else self.continuation[k])[np.maximum(gram, 0)]
    counts = np.where(gram >= 0, counts, 0)
    denominator = np.maximum(total[seen], 1.0)
    gamma = (discounts[1] * n1[seen] + discounts[2] * n2[seen]
             + discounts[3] * n3[seen]) / denominator
    mixed = (counts - discounts[np.minimum(counts, 3)]) / denominator + gamma * lower
    return np.where(active & (total[seen] > 0), mixed, lower)

  def probabilities(self, windows, history, order):
    """[order, rows]: P(windows[i, -1] | the history[i] bytes before it in windows[i])
    under the models of order 1..order (one pass: they share every lower order).

    windows: int [rows, order], each row's context bytes then the byte to predict.
    """
    order = min(order, self.orders)
    windows = np.asarray(windows, np.int64)[:, -order:]
    rows = len(windows)
    lower = np.full(rows, 1.0 / 256)    # P_{k−1} from continuation counts
    gram = np.zeros(rows, np.int64)     # id of the last k bytes (ending with the target)
    context = np.zeros(rows, np.int64)  # id of the k − 1 bytes before the target
    by_order = np.empty((order, rows))
    for k in range(1, order + 1):
      if k > 1:
        context = self.lookup(
            k - 1, windows[:, order - k] * len(self.keys[k - 2]) + context, context >= 0)
      gram = self.lookup(k, windows[:, order - k] * len(self.keys[k - 1]) + gram,
                         (gram >= 0) & (context >= 0))
      active = (history >= k - 1) & (context >= 0)
      by_order[k - 1] = self.mix(k, True, gram, context, active, lower)
      if k < order:
        lower = self.mix(k, False, gram, context, active, lower)
    return by_order

  def log2_probs(self, text, order):
    """[order, bytes]: log2 P(text[t] | the k − 1 bytes before it, fewer at the start)
    under the models of order k = 1..order."""
    b = np.frombuffer(text, np.uint8).astype(np.int64)
    padded = np.concatenate([np.zeros(order - 1, np.int64), b])
    windows = np.lib.stride_tricks.sliding_window_view(padded, order)
    history = np.minimum(np.arange(len(b)), order - 1)
    return np.log2(self.probabilities(windows, history, order))

  def bpc(self, text, order):
    """[order]: bits per byte of text under the models of order 1..order."""
    return -np.mean(self.log2_probs(text, order), axis=1)

  def distribution(self, context, order):
    """P(w | context) for the 256 bytes w, under the order-`order` model (which reads
    the last order − 1 bytes of context)."""
    context = np.frombuffer(context, np.uint8).astype(np.int64)
    context = context[len(context) - min(len(context), order - 1):]
    windows = np.zeros((256, order), np.int64)
    windows[:, order - 1 - len(context):order - 1] = context
    windows[:, -1] = np.arange(256)
    return self.probabilities(windows, np.full(256, len(context)), order)[-1]


@gin.configurable
def ngram_baseline(train, heldout, validation_fraction=0.1):
  """Held-out bpc of a KneserNeyBytes whose order is the best on the last
  `validation_fraction` of the training split when fitted on the rest of it, then
  refitted on the whole training split."""
  cut = int(len(train) * (1.0 - validation_fraction))
  model = KneserNeyBytes().fit(train[:cut])
  validation = model.bpc(train[cut:], model.orders)
  order = int(np.argmin(validation)) + 1
  return {"ngram": float(KneserNeyBytes(max_order=order).fit(train).bpc(heldout, order)[-1]),
          "ngram_order": order,
          "ngram_validation_bpc": [round(float(v), 4) for v in validation]}


def baselines(corpus):
  """One record: every figure of the module docstring for run.corpus's held-out split."""
  try:
    corpus_data = data.corpus_bytes(corpus)
  except data.CorpusError as e:
    raise UserError(str(e))
  train, heldout = data.split(corpus_data, "train"), data.split(corpus_data, "eval")
  if len(heldout) < 1 or len(train) < 10:
    raise UserError("corpus %r: %d bytes are too few for baselines (its held-out split "
                    "must hold at least one byte)" % (corpus, len(corpus_data)))
  record = {"corpus": corpus, "train_bytes": len(train), "heldout_bytes": len(heldout)}
  seconds = {}
  for name in COMPRESSORS:
    start = time.time()
    record[name], record[name + "_conditioned"] = compressor_bpc(name, train, heldout)
    seconds[name] = round(time.time() - start, 2)
  start = time.time()
  record.update(ngram_baseline(train, heldout))
  seconds["ngram"] = round(time.time() - start, 2)
  record["seconds"] = seconds
  for name in LABELS:
    record[name] = round(record[name], 4)
  return record


def write(record, model_dir):
  """MODEL_DIR/baselines.json, where compare finds it."""
  tf.io.gfile.makedirs(model_dir)
  path = model_dir.rstrip("/") + "/" + BASELINES_FILE
  with tf.io.gfile.GFile(path + ".tmp", "w") as f:
    f.write(json_line(record))
  tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
  return path


def json_line(record):
  return json.dumps(record) + "\n"


def read_records(path):
  """The records of a baselines file: one JSON object per line."""
  if not tf.io.gfile.exists(path):
    raise UserError("baselines file %r does not exist" % path)
  with tf.io.gfile.GFile(path) as f:
    lines = [line for line in f.read().splitlines() if line.strip()]
  try:
    records = [json.loads(line) for line in lines]
  except ValueError as e:
    raise UserError("baselines file %r: not JSON lines (%s)" % (path, e))
  for r in records:
    if not isinstance(r, dict) or "corpus" not in r:
      raise UserError("baselines file %r: a record without 'corpus' (write it with "
                      "mtfzoo baselines)" % path)
  return records
