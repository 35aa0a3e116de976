import numpy as np
import pytest

from data import CorpusError, eval_steps, make_input_fn, split, write_shards
from mtf_compat import tf

LENGTH = 8


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
  """40 distinct windows of 9 random bytes in 5 shards of the train split."""
  path = tmp_path_factory.mktemp("corpus") / "random.bin"
  path.write_bytes(np.random.RandomState(0).bytes(360))
  m = write_shards(str(path), "train", LENGTH, str(path.parent / "data"),
                   records_per_shard=8)
  assert m["windows"] == 40 and len(m["shards"]) == 5
  return m


class FakeTPUContext:
  """TPUEstimator's per-host context: input_fn call `index` of `count`."""

  def __init__(self, index, count):
    self.deployment = ("/job:worker/task:%d/device:CPU:0" % index, index, count, 4)

  def current_input_fn_deployment(self):
    return self.deployment


def batches(input_fn, batch_size, steps=None, context=None):
  """The first `steps` batches (all of them if None) as numpy dicts."""
  params = {"batch_size": batch_size}
  if context:
    params["context"] = context
  with tf.Graph().as_default():
    next_batch = tf.data.make_one_shot_iterator(input_fn(params)).get_next()
    out = []
    with tf.Session() as session:
      while steps is None or len(out) < steps:
        try:
          out.append(session.run(next_batch))
        except tf.errors.OutOfRangeError:
          break
  return out


def windows_of(batch_list):
  """Each row's full window (inputs plus the last target) as bytes."""
  return [bytes(np.append(i, t[-1]).astype(np.uint8))
          for b in batch_list for i, t in zip(b["inputs"], b["targets"])]


def all_windows(m):
  with open(m["source"], "rb") as f:
    train = split(f.read(), "train")
  return [train[i * LENGTH:i * LENGTH + LENGTH + 1] for i in range(m["windows"])]


def test_utf8_text_round_trips_through_shards_and_input_fn_byte_for_byte(tmp_path):
  text = "Fair Verona — ‘café’ 😀\n".encode("utf-8") * 10  # 33 bytes a line
  (tmp_path / "verona.txt").write_bytes(text)
  train = split(text, "train")
  assert len(train) == 37 * LENGTH + 1  # so the windows cover the split exactly
  m = write_shards(str(tmp_path / "verona.txt"), "train", LENGTH, str(tmp_path / "d"),
                   records_per_shard=5)
  [batch] = batches(make_input_fn(m["dir"], LENGTH, training=False), 37)
  inputs, targets = batch["inputs"], batch["targets"]
  assert inputs.dtype == np.int32 and inputs.min() >= 0 and inputs.max() <= 255
  assert targets.max() == 0xF0  # the emoji's lead byte, not its code point 0x1F600
  joined = bytes(inputs.reshape(-1).astype(np.uint8)) + bytes([targets[-1, -1]])
  assert joined == train


def test_targets_are_inputs_shifted_by_one_byte_in_static_shapes(manifest):
  input_fn = make_input_fn(manifest["dir"], LENGTH, training=True)
  with tf.Graph().as_default():
    spec = tf.data.get_output_shapes(input_fn({"batch_size": 4}))
  assert spec == {"inputs": tf.TensorShape([4, LENGTH]),
                  "targets": tf.TensorShape([4, LENGTH])}
  [batch] = batches(input_fn, 4, steps=1)
  np.testing.assert_array_equal(batch["targets"][:, :-1], batch["inputs"][:, 1:])
  assert set(windows_of([batch])) <= set(all_windows(manifest))


def test_eval_reads_each_window_once_in_file_order_dropping_the_partial_batch(manifest):
  out = batches(make_input_fn(manifest["dir"], LENGTH, training=False), 6)
  assert len(out) == eval_steps(manifest, 6) == 6  # 40 windows: 6 full batches
  assert windows_of(out) == all_windows(manifest)[:36]


def test_eval_steps_rejects_a_split_with_fewer_windows_than_a_batch(manifest):
  assert eval_steps(manifest, 40) == 1 and eval_steps(manifest, 13) == 3
  with pytest.raises(CorpusError, match="40 windows.*batch of 41"):
    eval_steps(manifest, 41)


def test_an_epoch_of_training_is_a_shuffled_permutation_of_every_window(manifest):
  epoch = windows_of(batches(make_input_fn(manifest["dir"], LENGTH, training=True), 8, 5))
  assert sorted(epoch) == sorted(all_windows(manifest))
  assert epoch != all_windows(manifest)


def test_one_seed_gives_the_same_batches_and_another_seed_different_ones(manifest):
  def first_batches(seed):
    return windows_of(batches(make_input_fn(manifest["dir"], LENGTH, training=True,
                                            seed=seed), 4, steps=12))
  assert first_batches(3) == first_batches(3)
  assert first_batches(3) != first_batches(4)


def test_start_step_k_gives_the_batches_of_steps_k_on_of_an_unresumed_run(manifest):
  def run(start_step, steps):
    return batches(make_input_fn(manifest["dir"], LENGTH, training=True, seed=1,
                                 start_step=start_step), 8, steps)
  unresumed = run(0, 12)  # 5 steps an epoch: step 7 is in the second epoch
  resumed = run(7, 5)
  for a, b in zip(unresumed[7:], resumed):
    np.testing.assert_array_equal(a["inputs"], b["inputs"])
  assert len(resumed) == 5


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_hosts_read_disjoint_shares_that_together_cover_every_window(manifest, training):
  input_fn = make_input_fn(manifest["dir"], LENGTH, training=training)
  shares = [windows_of(batches(input_fn, 4, steps=5, context=FakeTPUContext(host, 2)))
            for host in range(2)]
  assert not set(shares[0]) & set(shares[1])
  assert sorted(shares[0] + shares[1]) == sorted(all_windows(manifest))


def test_input_fn_refuses_shards_of_another_sequence_length(manifest):
  with pytest.raises(CorpusError, match="sequence_length 8, not 16"):
    make_input_fn(manifest["dir"], 16, training=True)
