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


def test_resuming_anywhere_across_shard_groups_and_epochs_continues_the_order(manifest):
  # Groups of 2 shards (of 8 windows of 9 bytes): each epoch reads 3 groups in a
  # shuffled shard order, so resume points fall inside groups, between them and in
  # later epochs.
  def run(start_step, steps, context=None):
    return windows_of(batches(make_input_fn(manifest["dir"], LENGTH, training=True,
                                            seed=5, start_step=start_step,
                                            shuffle_bytes=2 * 8 * 9),
                              3, steps, context))
  unresumed = run(0, 40)  # 120 windows: 3 epochs
  assert sorted(unresumed[:40]) == sorted(all_windows(manifest))
  assert unresumed[:40] != unresumed[40:80]  # each epoch in its own order
  for start in (1, 5, 6, 13, 27):
    assert run(start, 40 - start) == unresumed[3 * start:]
  two_hosts = [run(4, 6, FakeTPUContext(host, 2)) for host in range(2)]
  assert two_hosts[0] == run(0, 40)[24::2][:18] and two_hosts[1] == run(0, 40)[25::2][:18]


def test_a_run_resumed_at_step_5e11_reads_there_without_reading_the_steps_before(
    manifest):
  # 5 steps of 8 windows are one epoch: steps 5e11 ... 5e11 + 4 are epoch 1e11, a
  # permutation of every window in an order of its own. Reading (or skipping) the
  # 4e12 windows before it would never finish.
  def epoch_at(step):
    return windows_of(batches(make_input_fn(manifest["dir"], LENGTH, training=True,
                                            seed=2, start_step=step), 8, 5))
  far = epoch_at(5 * 10 ** 11)
  assert sorted(far) == sorted(all_windows(manifest))
  assert far != epoch_at(0) and far != epoch_at(5)


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory):
  """Manifests of two corpora whose windows tell them apart: bytes < 128 and >= 128."""
  base = tmp_path_factory.mktemp("mixture")
  out = []
  for name, low in (("low.bin", 0), ("high.bin", 128)):
    values = np.random.RandomState(low).randint(low, low + 128, size=900, dtype=np.uint8)
    (base / name).write_bytes(values.tobytes())
    out.append(write_shards(str(base / name), "train", LENGTH, str(base / "data"),
                            records_per_shard=16))
  return out


def test_a_mixture_draws_its_weights_exactly_in_each_block_of_4096_windows(two_corpora):
  low, high = (m["dir"] for m in two_corpora)
  mixed = windows_of(batches(make_input_fn({low: 0.3, high: 0.7}, LENGTH, training=True,
                                           seed=4), 64, 128))  # 2 blocks
  for block in (mixed[:4096], mixed[4096:]):
    assert sum(w[0] < 128 for w in block) == round(0.3 * 4096)
  # Each corpus's windows come in the order that corpus has on its own (the first
  # corpus's order is keyed as a single corpus's is).
  alone = windows_of(batches(make_input_fn(low, LENGTH, training=True, seed=4), 64, 20))
  from_low = [w for w in mixed if w[0] < 128]
  assert len(from_low) > len(alone) and from_low[:len(alone)] == alone


def test_a_resumed_mixture_continues_the_mixed_order(two_corpora):
  def run(start_step, steps):
    return windows_of(batches(make_input_fn(
        {two_corpora[0]["dir"]: 1, two_corpora[1]["dir"]: 3}, LENGTH, training=True,
        seed=9, start_step=start_step), 100, steps))
  unresumed = run(0, 90)  # 9,000 windows: blocks of 4,096 and epochs of 99 windows
  for start in (3, 41, 77):
    assert run(start, 90 - start) == unresumed[100 * start:]
