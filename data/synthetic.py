"""Synthetic recall tasks as byte sequences, generated from a seed.

Each task builds a window w of sequence_length + 1 bytes and returns
(inputs, targets, mask): inputs = w[:-1], targets = w[1:], and mask[t] = 1 where
targets[t] is an answer that the bytes before it determine (the loss and the accuracy
are read there only); everywhere else the byte is noise the model cannot predict.

- mqar (multi-query associative recall; Zoology, Arora et al. 2023): K key-value pairs
  k1 v1 ... kK vK, keys distinct bytes in [1, 128), values bytes in [128, 256); then
  every key once more, in random order, each followed by its value, at random places
  in a tail of FILLER bytes. Answers: the value after each queried key.
  Needs 4K ≤ sequence_length + 1.
- induction (induction heads; Olsson et al. 2022, their repeated random tokens): a
  prefix of P distinct random bytes in [1, 256), P random in [2, min(255, (L + 1) / 2)],
  repeated to fill the window. Each byte of a repeat is a token seen before; the answer
  is what followed it then. Answers: every byte after the first P + 1.
- selective_copy (Gu & Dao 2023): random noise bytes in [2, 256) holding N data
  bytes, each right after a MARK byte, then GO and the N data bytes in order. Answers:
  the N copied bytes. N = sequence_length // 8.
"""
import collections

import numpy as np

from mtf_compat import tf

FILLER = 0   # mqar: the tail between queries
GO = 0       # selective_copy: the copy starts after it
MARK = 1     # selective_copy: the next byte is to be copied
KEYS = np.arange(1, 128)
VALUES = np.arange(128, 256)
TRAIN_STREAM, HELD_OUT_STREAM = 0, 1


class TaskError(ValueError):
  """A task that does not exist or does not fit the context (one line)."""


def example(window, answer_positions):
  """window [L + 1], positions p of w whose byte is an answer -> (inputs, targets,
  mask), with mask[p - 1] = 1: target t is w[t + 1]."""
  window = np.asarray(window, np.int32)
  mask = np.zeros([len(window) - 1], np.float32)
  mask[np.asarray(answer_positions) - 1] = 1.0
  return window[:-1], window[1:], mask


def spaced_starts(rng, room, count, width):
  """`count` sorted starts of non-overlapping runs of `width` bytes in [0, room),
  uniformly placed (gaps of any size, including none)."""
  free = np.sort(rng.choice(room - count * (width - 1), count, replace=False))
  return free + np.arange(count) * (width - 1)


def mqar(rng, sequence_length, num_pairs):
  window = np.full([sequence_length + 1], FILLER, np.int32)
  keys = rng.choice(KEYS, num_pairs, replace=False)
  values = rng.choice(VALUES, num_pairs, replace=True)
  window[0:2 * num_pairs:2], window[1:2 * num_pairs:2] = keys, values
  order = rng.permutation(num_pairs)
  tail = len(window) - 2 * num_pairs
  starts = 2 * num_pairs + spaced_starts(rng, tail, num_pairs, 2)
  window[starts], window[starts + 1] = keys[order], values[order]
  return example(window, starts + 1)


def mqar_accuracy_without_recall(inputs, targets, mask, num_pairs):
  """The expected accuracy over mqar sequences [n, L] of the best reader that never
  matches a query to its key: it knows the K values (bytes 1, 3, .. of the first 2K) and
  which of them were already answered, and names the most common value not yet
  answered (every key is queried once, in random order, so the answer is uniform over
  those). Token mixing that does not depend on the input can learn this counting, so it
  is the score that shows recall, not 1/K."""
  expected = []
  for row_inputs, row_targets, row_mask in zip(inputs, targets, mask):
    left = collections.Counter(row_inputs[1:2 * num_pairs:2].tolist())
    for t in np.flatnonzero(row_mask):
      expected.append(max(left.values()) / sum(left.values()))
      left[int(row_targets[t])] -= 1
  return float(np.mean(expected))


def induction(rng, sequence_length):
  period = rng.integers(2, induction_max_period(sequence_length) + 1)
  prefix = rng.choice(np.arange(1, 256), period, replace=False)
  window = np.resize(prefix, sequence_length + 1)  # the prefix, repeated
  return example(window, np.arange(period + 1, sequence_length + 1))


def induction_max_period(sequence_length):
  """At most half the window (the prefix repeats at least once), of distinct bytes."""
  return min(255, (sequence_length + 1) // 2)


def selective_copy(rng, sequence_length):
  count = selective_copy_count(sequence_length)
  region = sequence_length - count  # noise with the marked bytes, then GO
  window = rng.integers(2, 256, sequence_length + 1)
  starts = spaced_starts(rng, region, count, 2)
  window[starts] = MARK
  window[region] = GO
  window[region + 1:] = window[starts + 1]
  return example(window, np.arange(region + 1, sequence_length + 1))


def selective_copy_count(sequence_length):
  return sequence_length // 8


TASKS = ("mqar", "induction", "selective_copy")


def make_task(name, sequence_length, num_pairs):
  """generate(rng) -> (inputs, targets, mask) for the named task; TaskError if the
  task is unknown or does not fit sequence_length (num_pairs: mqar only)."""
  if name not in TASKS:
    raise TaskError("--task %r is not a task: choose from %s" % (name, ", ".join(TASKS)))
  if name != "mqar" and num_pairs is not None:
    raise TaskError("--num_pairs applies to --task mqar only, not %r" % name)
  if name == "mqar":
    if not 1 <= num_pairs <= len(KEYS) or 4 * num_pairs > sequence_length + 1:
      raise TaskError(
          "--num_pairs %d does not fit: mqar needs 1 <= num_pairs <= %d and 4 · "
          "num_pairs <= run.sequence_length + 1 = %d"
          % (num_pairs, len(KEYS), sequence_length + 1))
    return lambda rng: mqar(rng, sequence_length, num_pairs)
  if name == "induction":
    if sequence_length < 4:  # room for a period of 2 and one answer
      raise TaskError("induction needs run.sequence_length >= 4, not %d"
                      % sequence_length)
    return lambda rng: induction(rng, sequence_length)
  if selective_copy_count(sequence_length) < 1:
    raise TaskError("selective_copy needs run.sequence_length >= 8, not %d"
                    % sequence_length)
  return lambda rng: selective_copy(rng, sequence_length)


def sequence_rng(seed, stream, index):
  """The generator of sequence `index` of a stream: a function of the three only, so a
  resumed run and another process draw the same sequences."""
  return np.random.default_rng([seed, stream, index])


def sequences(generate, seed, stream, start, count):
  """Sequences start .. start + count - 1 of a stream, stacked: (inputs, targets,
  mask) arrays [count, sequence_length]."""
  rows = [generate(sequence_rng(seed, stream, i)) for i in range(start, start + count)]
  return tuple(np.stack(column) for column in zip(*rows))


def make_input_fn(generate, sequence_length, seed, start_step=0):
  """A training input_fn(params) -> {'inputs', 'targets', 'weights'} batches of the
  training stream, forever; from step start_step on, so a resumed run sees what an
  unresumed one would (batch b holds sequences b·batch_size ..)."""

  def input_fn(params):
    batch_size = params["batch_size"]

    def batches():
      step = start_step
      while True:
        inputs, targets, mask = sequences(generate, seed, TRAIN_STREAM,
                                          step * batch_size, batch_size)
        yield {"inputs": inputs, "targets": targets, "weights": mask}
        step += 1

    shape = tf.TensorShape([batch_size, sequence_length])
    signature = {"inputs": tf.TensorSpec(shape, tf.int32),
                 "targets": tf.TensorSpec(shape, tf.int32),
                 "weights": tf.TensorSpec(shape, tf.float32)}
    ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return ds.prefetch(2)

  return input_fn
