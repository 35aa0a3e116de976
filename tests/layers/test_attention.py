"""Causal multi-head attention against numpy: softmax(QKᵀ/√d_head + log M)V (Vaswani
et al. 2017, "Attention is all you need"), scaled by d_head, not by length."""
import numpy as np
import pytest

from layers.attention import Attention
from mtf_compat import tf
from tests import numpy_reference as ref
from tests.mtf_testing import MtfRunner, rng


def run_attention(x, **kwargs):
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    b, n, d = x.shape
    r = MtfRunner(batch=b, length=n, d_model=d)
    y = Attention(**kwargs)(r.constant(x, ["batch", "length", "d_model"]), r.context)
    y_value = r.run(y)
    weights = {v.name: r.variable_value(v) for v in r.graph.trainable_variables}
  return y_value, weights


def test_attention_matches_numpy_reference():
  x = rng(0).randn(2, 6, 8).astype(np.float32)
  y, w = run_attention(x, heads=2)
  expected = ref.attention(x, w["q"], w["k"], w["v"], w["o"])
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-6)


def test_attention_scales_logits_by_d_head_not_length():
  # With d_head = 8 and length = 4, a length^-1/2 scale would give different output.
  x = 3.0 * rng(1).randn(1, 4, 16).astype(np.float32)
  y, w = run_attention(x, heads=2)
  np.testing.assert_allclose(y, ref.attention(x, w["q"], w["k"], w["v"], w["o"]),
                             rtol=1e-4, atol=1e-6)


def test_shared_kv_uses_one_projection_for_keys_and_values():
  x = rng(2).randn(2, 5, 8).astype(np.float32)
  y, w = run_attention(x, heads=2, shared_kv=True)
  assert "v" not in w
  np.testing.assert_allclose(y, ref.attention(x, w["q"], w["k"], w["k"], w["o"]),
                             rtol=1e-4, atol=1e-6)


def test_attention_output_ignores_future_positions():
  x = rng(3).randn(2, 8, 8).astype(np.float32)
  y, _ = run_attention(x, heads=2)
  for i in (0, 3, 6):
    perturbed = x.copy()
    perturbed[:, i + 1:] += rng(4 + i).randn(*perturbed[:, i + 1:].shape)
    y_perturbed, _ = run_attention(perturbed, heads=2)
    np.testing.assert_array_equal(y[:, :i + 1], y_perturbed[:, :i + 1])
    assert not np.allclose(y[:, i + 1:], y_perturbed[:, i + 1:])


@pytest.mark.parametrize("encoding", ["rotary", "alibi"])
def test_attention_with_rotary_or_alibi_positions_matches_numpy_reference(encoding):
  x = 20.0 * rng(5).randn(2, 8, 16).astype(np.float32)  # logits far from 0
  y, w = run_attention(x, heads=4, position_encoding=encoding)
  expected = ref.attention_with_positions(x, w["q"], w["k"], w["v"], w["o"], encoding)
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-6)
  assert not np.allclose(y, ref.attention(x, w["q"], w["k"], w["v"], w["o"]), rtol=0.01)
