"""Loss thresholds for the end-to-end training tests, from the held-out bytes: below
order 0 a model has learned byte frequencies; below order 1 it uses more context than
the current byte, which a context-blind model (the identity as token mixer) cannot."""
import numpy as np

import data


def order_k_cross_entropy(train, targets, previous=None, pseudo_count=0.5):
  """Mean −ln q(target) in nats of the order-0 (previous=None: byte frequencies) or
  order-1 (q(byte | previous byte)) model counted on the training bytes, with
  `pseudo_count` added to every count (Krichevsky–Trofimov for 0.5)."""
  if previous is None:
    counts = np.bincount(train, minlength=256) + pseudo_count
    return -np.log(counts[targets] / counts.sum()).mean()
  counts = np.zeros([256, 256])
  np.add.at(counts, (train[:-1], train[1:]), 1)
  counts += pseudo_count
  q = counts / counts.sum(axis=1, keepdims=True)
  return -np.log(q[previous, targets]).mean()


def held_out_thresholds(corpus, sequence_length, windows):
  """(order-0, order-1) cross-entropies in nats on the bytes `eval` scores: the
  targets of the first `windows` held-out windows (eval reads them in order).

  On Shakespeare with 320 windows of 32 bytes: 3.26 and 2.47 nats. Order 1 is the
  bigram counted on all 4.8 MB of training bytes: the best that a model seeing only
  the current byte can learn.
  """
  corpus_bytes = data.corpus_bytes(corpus)
  train = np.frombuffer(data.split(corpus_bytes, "train"), np.uint8).astype(np.int64)
  held_out = np.frombuffer(data.split(corpus_bytes, "eval"), np.uint8).astype(np.int64)
  n = sequence_length
  scored = np.stack([held_out[i * n:i * n + n + 1] for i in range(windows)])
  previous, targets = scored[:, :-1].ravel(), scored[:, 1:].ravel()
  return (order_k_cross_entropy(train, targets),
          order_k_cross_entropy(train, targets, previous))
