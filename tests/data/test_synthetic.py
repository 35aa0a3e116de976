"""The synthetic recall tasks: every answer follows from the bytes before it (solved
here by independent readers of the inputs), the same seed gives the same data, and the
training batches carry the answer mask as the loss weights."""
import numpy as np
import pytest

from data import synthetic
from mtf_compat import tf

LENGTH = 64


def solve_mqar(inputs, t):
  """The value that followed the first occurrence of the queried key."""
  first = list(inputs[:t]).index(inputs[t])
  return inputs[first + 1]


def solve_induction(inputs, t):
  """What followed the queried byte every time it occurred before (the same byte)."""
  followers = {inputs[j + 1] for j in range(t) if inputs[j] == inputs[t]}
  assert len(followers) == 1
  return followers.pop()


def solve_selective_copy(inputs, t):
  """The k-th byte after a MARK in the sequence, for the k-th answer after GO."""
  go = len(inputs) - 1 - list(inputs[::-1]).index(synthetic.GO)
  marked = [inputs[j + 1] for j in range(go) if inputs[j] == synthetic.MARK]
  return marked[t - go]


SOLVERS = {"mqar": solve_mqar, "induction": solve_induction,
           "selective_copy": solve_selective_copy}


def task(name, length=LENGTH, num_pairs=None):
  return synthetic.make_task(name, length, 8 if name == "mqar" and num_pairs is None
                             else num_pairs)


@pytest.mark.parametrize("name", synthetic.TASKS)
def test_every_answer_is_determined_by_the_bytes_before_it(name):
  generate = task(name)
  answers = 0
  for seed in range(50):
    inputs, targets, mask = generate(synthetic.sequence_rng(seed, 0, 0))
    assert inputs.shape == targets.shape == mask.shape == (LENGTH,)
    np.testing.assert_array_equal(inputs[1:], targets[:-1])  # one window, shifted
    for t in np.flatnonzero(mask):
      assert SOLVERS[name](inputs, t) == targets[t], (seed, t)
      answers += 1
  assert answers >= 50


def test_mqar_asks_every_key_once_with_keys_and_values_in_their_own_ranges():
  for seed in range(20):
    inputs, targets, mask = task("mqar", num_pairs=8)(synthetic.sequence_rng(seed, 0, 0))
    queried = inputs[mask == 1]
    assert sorted(queried) == sorted(inputs[0:16:2])
    assert np.all(queried < 128) and np.all(targets[mask == 1] >= 128)


def hand_made_mqar(values, queried):
  """One mqar sequence [1, L] built by hand: keys 1, 2, .. with the given values, then
  the keys at the indices `queried`, each after a filler and followed by its value."""
  window = [b for key, value in enumerate(values, 1) for b in (key, value)]
  answers = []
  for i in queried:
    window += [synthetic.FILLER, i + 1, values[i]]
    answers.append(len(window) - 1)
  return [a[None] for a in synthetic.example(window, answers)]


def test_without_recall_distinct_values_score_one_over_the_number_still_unanswered():
  """The k-th of K answers is one of K - k + 1 values: the mean of 1/K .. 1/1."""
  score = synthetic.mqar_accuracy_without_recall(
      *hand_made_mqar([130, 131, 132, 133], [2, 0, 3, 1]), num_pairs=4)
  assert score == pytest.approx((1 / 4 + 1 / 3 + 1 / 2 + 1) / 4)


def test_without_recall_a_repeated_value_is_the_best_guess_until_it_is_used_up():
  # values a a b: first 2/3 (say a); then a or b, 1/2; then the one left, 1
  asked_a_b_a = hand_made_mqar([130, 130, 140], [0, 2, 1])
  assert synthetic.mqar_accuracy_without_recall(*asked_a_b_a, num_pairs=3) == \
      pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
  # asked b first: only a is left, twice: 2/3, then 1, 1
  asked_b_a_a = hand_made_mqar([130, 130, 140], [2, 0, 1])
  assert synthetic.mqar_accuracy_without_recall(*asked_b_a_a, num_pairs=3) == \
      pytest.approx((2 / 3 + 1 + 1) / 3)


def test_selective_copy_answers_are_the_last_eighth_and_the_marks_are_the_only_ones():
  inputs, targets, mask = task("selective_copy")(synthetic.sequence_rng(0, 0, 0))
  count = LENGTH // 8
  np.testing.assert_array_equal(np.flatnonzero(mask), np.arange(LENGTH - count, LENGTH))
  assert np.sum(inputs == synthetic.MARK) == count


@pytest.mark.parametrize("name", synthetic.TASKS)
def test_same_seed_gives_the_same_sequences_and_streams_differ(name):
  generate = task(name)
  a = synthetic.sequences(generate, 3, synthetic.TRAIN_STREAM, 0, 8)
  b = synthetic.sequences(generate, 3, synthetic.TRAIN_STREAM, 0, 8)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  held_out = synthetic.sequences(generate, 3, synthetic.HELD_OUT_STREAM, 0, 8)
  other_seed = synthetic.sequences(generate, 4, synthetic.TRAIN_STREAM, 0, 8)
  assert not np.array_equal(a[0], held_out[0])
  assert not np.array_equal(a[0], other_seed[0])


def take(input_fn, batch_size, steps):
  with tf.Graph().as_default():
    next_batch = tf.data.make_one_shot_iterator(
        input_fn({"batch_size": batch_size})).get_next()
    with tf.Session() as session:
      return [session.run(next_batch) for _ in range(steps)]


def test_training_batches_carry_the_answer_mask_as_weights_and_resume_in_order():
  generate = task("mqar")
  batches = take(synthetic.make_input_fn(generate, LENGTH, seed=5), 4, 3)
  inputs, targets, mask = synthetic.sequences(generate, 5, synthetic.TRAIN_STREAM, 0, 12)
  for step, batch in enumerate(batches):
    rows = slice(4 * step, 4 * step + 4)
    np.testing.assert_array_equal(batch["inputs"], inputs[rows])
    np.testing.assert_array_equal(batch["targets"], targets[rows])
    np.testing.assert_array_equal(batch["weights"], mask[rows])
  resumed = take(synthetic.make_input_fn(generate, LENGTH, seed=5, start_step=2), 4, 1)
  np.testing.assert_array_equal(resumed[0]["inputs"], batches[2]["inputs"])


@pytest.mark.parametrize("name, length, num_pairs, message", [
    ("recall", 128, None, "not a task"),
    ("mqar", 128, 33, "does not fit"),    # 4 · 33 > 129
    ("mqar", 128, 0, "does not fit"),
    ("mqar", 1024, 128, "does not fit"),  # only 127 keys
    ("induction", 128, 4, "mqar only"),
    ("induction", 3, None, "sequence_length"),
])
def test_a_task_that_does_not_exist_or_fit_is_one_line_task_error(name, length,
                                                                  num_pairs, message):
  with pytest.raises(synthetic.TaskError) as e:
    synthetic.make_task(name, length, num_pairs)
  assert message in str(e.value) and "\n" not in str(e.value)


def test_the_largest_mqar_that_fits_is_accepted():
  inputs, _, mask = task("mqar", 127, 32)(synthetic.sequence_rng(0, 0, 0))
  assert mask.sum() == 32
