"""The FLOP count behind bench's MFU, against the closed forms of its docstring."""
import gin
import pytest

from trainer import bench
from trainer import config
from trainer import model_summary
from trainer.run import Run

L, D, N, V, BATCH = 2, 32, 16, 256, 4


@pytest.fixture(autouse=True)
def clear_gin_config():
  yield
  gin.clear_config()


def settings(model_file, *bindings):
  config.parse(["gin/models/%s.gin" % model_file],
               ["GPT.num_layers = %d" % L, "GPT.d_model = %d" % D,
                "run.sequence_length = %d" % N] + list(bindings))
  return Run()


@pytest.mark.parametrize("model_file,weights,maps_per_layer", [
    # Q, K, V, O + feed-forward in and out (d_ff = 4d); QKᵀ and A·V over d channels.
    ("transformer", 12 * D * D, 2),
    # Feed-forward only; the two token-mixing maps over d channels.
    ("mixer", 8 * D * D, 2),
    # The shared map: no projections besides the feed-forward; one map.
    ("shared_attention", 8 * D * D, 1),
])
def test_flops_per_token_are_6n_plus_the_seq_map_products(model_file, weights,
                                                          maps_per_layer):
  matmul_weights = L * weights + D * V
  expected = 6 * matmul_weights + 3 * L * maps_per_layer * 2 * N * D
  assert bench.contraction_flops(settings(model_file), BATCH) == expected


def test_gmlp_flops_count_its_spatial_map_over_half_the_hidden_units():
  d_ff = 6 * D  # GMLP.multiplier = 6, split in halves u and v
  matmul_weights = L * (D * d_ff + d_ff // 2 * D) + D * V
  expected = 6 * matmul_weights + 3 * L * 2 * N * (d_ff // 2)
  assert bench.contraction_flops(settings("gmlp"), BATCH) == expected


def test_match_params_picks_the_d_model_with_the_nearest_parameter_count():
  target = model_summary.summarize(settings("transformer")).params
  gin.clear_config()
  mixer = settings("mixer")
  bench.match_params(mixer, target)
  chosen = gin.query_parameter("GPT.d_model")

  def params(d_model):
    with gin.unlock_config():
      gin.bind_parameter("GPT.d_model", d_model)
    return model_summary.summarize(mixer).params

  distances = {d: abs(params(d) - target) for d in (chosen - 8, chosen, chosen + 8)}
  assert chosen > D  # the Mixer has fewer parameters per d_model than the Transformer
  assert min(distances, key=distances.get) == chosen, distances
