"""The training graph reads the loss at the bytes a weights feature marks, also when a
step is split into serial microbatches."""
import gin
import numpy as np
import pytest

from layers.context import TRAIN
from mtf_compat import mtf, tf
from tests.mtf_testing import rng
from trainer import config
from trainer.model_fn import build_model, train_graph
from trainer.run import Run

BATCH, LENGTH = 4, 8


@pytest.fixture(autouse=True)
def clear_gin_config():
  yield
  gin.clear_config()


def training_loss(targets, weights, microbatches=1):
  config.parse(["gin/models/transformer.gin"],
               ["GPT.num_layers = 1", "GPT.d_model = 16", "Attention.heads = 2",
                "run.batch_size = %d" % BATCH, "run.sequence_length = %d" % LENGTH,
                "run.microbatches = %d" % microbatches])
  settings = Run()
  with tf.Graph().as_default():
    tf.set_random_seed(11)
    mesh = mtf.Mesh(mtf.Graph(), "mesh")
    model, context, shape = build_model(settings, mesh, TRAIN, BATCH)
    tokens = rng(0).randint(0, 256, (BATCH, LENGTH))

    def feature(value, dtype):
      return mtf.import_tf_tensor(mesh, tf.constant(value, dtype), shape)

    loss, *_ = train_graph(settings, model, context, feature(tokens, tf.int32),
                           feature(targets, tf.int32),
                           tf.train.get_or_create_global_step(),
                           feature(weights, tf.float32))
    lowering = mtf.Lowering(mesh.graph, {mesh: settings.layout.placement_impl()})
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      session.run(lowering.copy_masters_to_slices())
      return session.run(lowering.export_to_tf_tensor(loss))


def test_training_loss_changes_with_answer_targets_only_also_over_microbatches():
  microbatches = 2
  targets = rng(1).randint(0, 256, (BATCH, LENGTH))
  weights = np.zeros([BATCH, LENGTH], np.float32)
  weights[:, 5] = weights[:, 7] = 1.0  # the same count in every row
  loss = training_loss(targets, weights, microbatches)
  noise = targets.copy()
  noise[weights == 0] = (noise[weights == 0] + 1) % 256
  np.testing.assert_allclose(training_loss(noise, weights, microbatches), loss,
                             rtol=1e-6)
  answers = targets.copy()
  answers[:, 5] = (answers[:, 5] + 1) % 256
  assert abs(training_loss(answers, weights, microbatches) - loss) > 1e-4
  # Microbatches of equal answer counts average to the whole batch's loss.
  np.testing.assert_allclose(training_loss(targets, weights, 1), loss, rtol=1e-5)
