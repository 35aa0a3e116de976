"""mtfzoo synthetic: a tiny Transformer learns induction far above what the bytes it
has seen allow without it; the evaluation loss is read at the answers only; the
decoding state is what the sampler keeps."""
import gin
import numpy as np
import pytest

from data import synthetic
from mtf_compat import tf
from reports import synthetic as job
from trainer import config
from trainer.estimator import make_estimator
from trainer.run import Run

LENGTH = 16
INDUCTION = ["GPT.num_layers = 2", "GPT.d_model = 64", "run.sequence_length = %d" % LENGTH,
             "run.batch_size = 32", "run.train_steps = 300",
             # 6e-3 given for d_model 32 is 3e-3 at this d_model 64
             "learning_rate_schedule.base = 6e-3", "learning_rate_schedule.base_width = 32"]


def settings(model_file, bindings):
  config.parse(["gin/models/%s.gin" % model_file], bindings)
  return Run()


@pytest.fixture(scope="module")
def induction_run(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("induction"))
  run = settings("transformer", INDUCTION)
  record = job.train_and_measure(run, "induction", "transformer", seed=0,
                                 model_dir=model_dir)
  yield run, model_dir, record
  gin.clear_config()


def best_guess_without_induction(seed):
  """The expected accuracy of guessing uniformly among the distinct bytes seen so far
  (all a model can do at an answer without matching the byte's earlier occurrence)."""
  generate = synthetic.make_task("induction", LENGTH, None)
  inputs, _, mask = synthetic.sequences(generate, seed, synthetic.HELD_OUT_STREAM, 0, 512)
  scores = [1.0 / len(set(row[:t + 1])) for row, m in zip(inputs, mask)
            for t in np.flatnonzero(m)]
  return float(np.mean(scores))


def test_a_two_layer_transformer_learns_induction_far_above_chance(induction_run):
  _, _, record = induction_run
  baseline = best_guess_without_induction(0)
  assert baseline < 0.3  # and 1/255 for a uniform guess
  assert record["accuracy"] > max(0.45, 1.5 * baseline), record
  assert record["steps"] == 300 and record["sequence_length"] == LENGTH
  assert record["learning_rate"] == pytest.approx(3e-3)


def test_evaluation_loss_ignores_every_byte_but_the_answers(induction_run):
  run, model_dir, _ = induction_run
  generate = synthetic.make_task("induction", LENGTH, None)
  inputs, targets, mask = synthetic.sequences(generate, 9, synthetic.HELD_OUT_STREAM, 0,
                                              run.batch_size)

  def loss(targets):
    def input_fn(params):
      del params
      return tf.data.Dataset.from_tensors(
          {"inputs": inputs, "targets": targets, "weights": mask}).repeat()
    return make_estimator(run, model_dir).evaluate(input_fn, steps=1)["loss"]

  noise = np.where(mask == 1, targets, (targets + 7) % 256)
  answers = np.where(mask == 1, (targets + 7) % 256, targets)
  reference = loss(targets)
  np.testing.assert_allclose(loss(noise), reference, rtol=1e-6)
  assert loss(answers) > reference + 1.0


@pytest.mark.parametrize("model_file, memories_per_layer", [
    ("transformer", 2),       # keys and values, d_model wide
    ("shared_attention", 1),  # the map's input
])
def test_state_bytes_are_the_memories_of_every_layer_for_one_sequence(
    model_file, memories_per_layer):
  run = settings(model_file, ["GPT.num_layers = 3", "GPT.d_model = 32",
                              "run.sequence_length = 64", "run.batch_size = 8"])
  expected = 3 * memories_per_layer * 64 * 32 * 4
  assert job.state_bytes_per_sequence(run) == expected
  gin.clear_config()
