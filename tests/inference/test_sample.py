"""mtfzoo sample says how it goes on past the context."""
import types

import gin
import pytest

from inference.sample import past_the_context
from tests.models.test_gin_models import parse_model_file

SETTINGS = types.SimpleNamespace(sequence_length=16)


@pytest.fixture(autouse=True)
def clear_gin_config():
  yield
  gin.clear_config()


@pytest.mark.parametrize("model_file,mode", [
    ("retention", "decoding from the recurrent state"),
    ("linear_attention", "decoding from the recurrent state"),
    ("transformer_rotary", "recomputing the window per byte"),
    ("local_attention", "recomputing the window per byte")])
def test_sample_names_its_mode_once_it_passes_the_context(model_file, mode):
  parse_model_file(model_file)
  assert past_the_context(SETTINGS, 5, 11) is None  # 16 bytes: inside the context
  assert past_the_context(SETTINGS, 5, 12) == mode
