"""CorpusError: missing or unusable data (a module of its own so that preparation
workers can raise it without importing TensorFlow)."""


class CorpusError(ValueError):
  """Missing or unusable data, with a one-line message naming the culprit."""
