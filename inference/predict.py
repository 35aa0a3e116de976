"""Running TPUEstimator.predict over a few rows of numpy features."""
import numpy as np

from mtf_compat import tf
from trainer import checkpoints
from trainer.estimator import make_estimator


def predict(settings, model_dir, features, params, seed=None, tpu_flags=None):
  """Runs predict over numpy feature arrays; rows are padded to a batch the layout's
  `batch` split divides, and the padding is dropped from the results."""
  checkpoints.require(model_dir)
  rows = len(next(iter(features.values())))
  batch = settings.layout.split("batch")
  padded = -(-rows // batch) * batch
  features = {k: np.concatenate([v, np.repeat(v[-1:], padded - rows, axis=0)])
              for k, v in features.items()}

  def input_fn(params):
    del params
    return tf.data.Dataset.from_tensor_slices(features).batch(batch,
                                                               drop_remainder=True)

  estimator = make_estimator(settings, model_dir, params=params, seed=seed,
                             tpu_flags=tpu_flags, predict_batch_size=batch)
  return list(estimator.predict(input_fn, yield_single_examples=True))[:rows]
