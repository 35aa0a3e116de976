"""Reading what a model_dir holds: its latest step and its variables' shapes."""
from mtf_compat import tf
from trainer.errors import UserError


def latest(model_dir):
  return tf.train.latest_checkpoint(model_dir) if tf.io.gfile.exists(model_dir) else None


def latest_step(model_dir):
  path = latest(model_dir)
  if path is None:
    return 0
  return int(tf.train.load_variable(path, "global_step"))


def require(model_dir):
  path = latest(model_dir)
  if path is None:
    raise UserError("model_dir %r holds no checkpoint: train first" % model_dir)
  return path


def check_compatible(model_dir, variables):
  """Raises UserError if model_dir's checkpoint was written by another model.

  variables: {name: shape} of this config's model variables.
  """
  path = latest(model_dir)
  if path is None:
    return
  saved = dict(tf.train.list_variables(path))
  for name, shape in sorted(variables.items()):
    if name not in saved:
      raise UserError("model_dir %r holds a checkpoint of a different model: it has no "
                      "variable %s" % (model_dir, name))
    if list(saved[name]) != list(shape):
      raise UserError("model_dir %r holds a checkpoint of a different model: %s has "
                      "shape %s there and %s in this config"
                      % (model_dir, name, list(saved[name]), list(shape)))
