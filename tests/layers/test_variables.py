"""Initialisation: orthogonal over (fan-in, fan-out) (Saxe et al. 2014), small init of
seq² maps at σ/length, and GPT-2's (Radford et al. 2019) depth scaling of output
projections."""
import numpy as np
import pytest

from layers import variables
from mtf_compat import mtf, tf
from tests.mtf_testing import MtfRunner


def initial_value(make, num_layers=1, length=8):
  """The initial value of the variable that make(context) creates."""
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    r = MtfRunner(length=length, num_layers=num_layers)
    v = make(r.context)
    r.lower()
    return r.variable_value(v)


def orthogonal_weight(shape, fan_in, num_layers=1, output_projection=False,
                      **initialization):
  """The initial value of an orthogonally initialised weight; shape: [(name, size)]."""
  dims = [mtf.Dimension(n, s) for n, s in shape]
  init = variables.Initialization(kind="orthogonal", **initialization)
  return initial_value(
      lambda context: variables.weight(context, "w", dims, fan_in, output_projection,
                                       initialization=init), num_layers)


def as_matrix(w, shape, fan_in):
  """w reshaped to [prod(fan-in sizes), prod(fan-out sizes)]."""
  names = [n for n, _ in shape]
  axes = [names.index(n) for n in fan_in]
  fan_in_size = int(np.prod([w.shape[a] for a in axes]))
  return np.moveaxis(w, axes, range(len(axes))).reshape(fan_in_size, -1)


def gram(m):
  """MᵀM when M has at least as many rows as columns, else MMᵀ."""
  return m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T


@pytest.mark.parametrize("shape,fan_in", [
    ([("d_model", 16), ("d_ff", 16)], ["d_model"]),                 # square
    ([("d_model", 16), ("d_ff", 64)], ["d_model"]),                 # wide
    ([("d_ff", 64), ("d_model", 16)], ["d_ff"]),                    # tall
    ([("heads", 4), ("d_head", 8), ("d_model", 16)], ["heads", "d_head"]),  # 32 -> 16
    ([("d_model", 16), ("heads", 4), ("d_head", 8)], ["d_model"]),  # 16 -> 32
    ([("heads", 4), ("d_ff", 6), ("d_head", 8)], ["d_head"]),       # fan-in last
], ids=["square", "wide", "tall", "3d_heads_d_head_in", "3d_d_model_in",
        "3d_last_axis_in"])
def test_orthogonal_init_is_orthogonal_over_fan_in_and_fan_out(shape, fan_in):
  m = as_matrix(orthogonal_weight(shape, fan_in), shape, fan_in)
  np.testing.assert_allclose(gram(m), np.eye(min(m.shape)), atol=1e-5)


def test_orthogonal_output_projection_scaled_by_depth_has_gain_one_over_sqrt_branches():
  """GPT-2 (Radford et al. 2019) scales output projections by 1/√N, N the number of
  residual branches: 2 per block of 4 blocks here, so MᵀM = I / 8, not I / 4."""
  shape = [("heads", 4), ("d_head", 8), ("d_model", 16)]
  w = orthogonal_weight(shape, ["heads", "d_head"], num_layers=4,
                        output_projection=True, scale_outputs_by_depth=True)
  m = as_matrix(w, shape, ["heads", "d_head"])
  np.testing.assert_allclose(gram(m), np.eye(16) / 8, atol=1e-5)


@pytest.mark.parametrize("small,expected_std", [(True, 0.02 / 64), (False, 0.02)])
def test_small_init_gives_seq_maps_std_stddev_over_length(small, expected_std):
  init = variables.Initialization(stddev=0.02, small_seq_maps=small)
  heads = mtf.Dimension("heads", 8)
  w = initial_value(lambda context: variables.seq_map(
      context, "map", [heads, context.length, context.memory_length],
      initialization=init), length=64)
  assert w.shape == (8, 64, 64)
  np.testing.assert_allclose(w.std(), expected_std, rtol=0.03)
  assert abs(w.mean()) < 0.05 * expected_std
