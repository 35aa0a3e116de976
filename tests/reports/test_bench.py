"""The FLOP count behind bench's MFU, against the closed forms of its docstring."""
import gin
import numpy as np
import pytest

from mtf_compat import tf
from reports import bench
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


def test_moe_flops_count_the_router_and_the_two_routed_experts_only():
  """transformer_moe.gin: 4 experts of d_ff 256; per token a block computes attention's
  4d² projections, the router (d·E) and the two experts a byte is routed to (2·2·d·f),
  whatever the capacity factor: not all E experts, not the capacity's empty slots,
  not the dispatch and combine gathers."""
  experts, d_ff = 4, 256
  matmul_weights = L * (4 * D * D + D * experts + 2 * 2 * D * d_ff) + D * V
  expected = 6 * matmul_weights + 3 * L * 2 * 2 * N * D
  for factor in (1.0, 2.0, 3.0):
    flops = bench.contraction_flops(
        settings("transformer_moe", "MoEFeedForward.capacity_factor = %r" % factor),
        BATCH)
    assert flops == pytest.approx(expected, rel=1e-12), factor


def test_match_params_picks_the_d_model_with_the_nearest_parameter_count():
  target = model_summary.summarize(settings("transformer")).params
  gin.clear_config()
  mixer = settings("mixer")
  bench.match_params(mixer, target, tolerance=1.0)
  chosen = gin.query_parameter("GPT.d_model")

  def params(d_model):
    with gin.unlock_config():
      gin.bind_parameter("GPT.d_model", d_model)
    return model_summary.summarize(mixer).params

  distances = {d: abs(params(d) - target) for d in (chosen - 8, chosen, chosen + 8)}
  assert min(distances, key=distances.get) == chosen, distances


def test_match_params_keeps_d_model_when_no_size_comes_close(capsys):
  # Even d_model = 8 has more than 1,000 parameters (the byte embedding alone: 2,048).
  bench.match_params(settings("mixer"), 1000)
  assert gin.query_parameter("GPT.d_model") == D
  assert "keeping d_model=%d" % D in capsys.readouterr().err


def test_markdown_table_has_a_row_per_record_and_the_sm3_state_ratio():
  record = {"model": "transformer", "d_model": 32, "params": 1000,
            "tokens_per_sec": 200.0, "mfu": 0.5, "flops_per_token": 5.5e6, "peak_rss_bytes": 1e9,
            "activation_bytes": 1e8, "optimizer_state_bytes": 8e6,
            "seq_map_elements_per_layer": 0, "attention_map_elements_per_layer": 64,
            "sample_bytes_per_sec": 900.0, "sample_bytes_per_sec_recompute": 300.0,
            "sample_byte_time_late_over_early": 1.0}
  mixer = dict(record, model="mixer", tokens_per_sec=300.0)
  sm3 = dict(record, model="transformer+sm3", optimizer_state_bytes=2e6)
  lines = bench.markdown_table([record, mixer, sm3]).splitlines()
  rows = [l for l in lines if l.startswith("| ")]
  assert len(rows) == 4  # the header and one row per record
  assert "| mixer | 32 | 1,000 | 300 | 1.50 | 5.50 |" in rows[2]
  assert lines[-1] == "Optimizer state, transformer+sm3 / transformer: 0.25"
  # Records from before the decoding speeds show a dash in their column.
  assert rows[1].endswith("| – / – |")
  retention = dict(record, model="retention", decode_bytes_per_sec_at_100=700.4,
                   decode_bytes_per_sec_at_1000=690.6)
  assert bench.markdown_table([record, retention]).splitlines()[3].endswith(
      "| 700 / 691 |")


@pytest.mark.parametrize("model_file,per_layer", [
    # Keys and values over the context: 2 · N · d floats.
    ("transformer", 2 * N * D * 4),
    # One [heads, d_head, d_head + 1] state (numerator and normaliser), 4 heads.
    ("linear_attention", 4 * (D // 4) * (D // 4 + 1) * 4),
    # One [heads, d_head, d_head] state.
    ("retention", 4 * (D // 4) * (D // 4) * 4),
])
def test_decoding_state_bytes_count_memories_or_states(model_file, per_layer):
  assert bench.decoding_state_bytes(settings(model_file)) == L * per_layer


@pytest.mark.parametrize("length,position", [(128, 100), (128, 1000), (512, 1000),
                                             (2048, 100), (2048, 1000), (16, 5)])
def test_decode_stretch_times_the_bytes_just_after_the_position(length, position):
  prompt, before, n = bench.decode_stretch(length, position)
  assert 1 <= prompt <= length and before >= 1 and n >= 1
  # Output byte k sits at position prompt + k: the last untimed byte at `position`.
  assert prompt + before - 1 == position
  last = prompt + before + n - 1
  if position < length:
    assert last <= length - 1  # the whole stretch decoded inside the window
  assert n <= position  # near the position, not averaged over a far longer stretch


@pytest.mark.parametrize("model_file", ["transformer", "linear_attention"])
def test_decode_speed_differences_time_the_stretch_alone(model_file):
  """The shorter run of each decode_speed difference makes exactly the first bytes of
  the longer one, so the time between them is the stretch's bytes and nothing else
  (inside the 16-byte window: decoding from the memories; past it, the Transformer
  recomputing the window, linear attention decoding from its state). Weights of σ 1
  make the bytes depend on the window, not on the sampling noise alone."""
  positions = (5, 40)
  with tf.Graph().as_default():
    lowering, fetches = bench.decode_runs(
        settings(model_file, "Initialization.stddev = 1.0", "GPT.embedding_stddev = 1.0"),
        positions)
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      session.run(lowering.copy_masters_to_slices())
      out = {key: row[0] for key, row in session.run(fetches).items()}
  for position in positions:
    _, before, n = bench.decode_stretch(N, position)
    short, long = out[position, before], out[position, before + n]
    assert len(long) == before + n
    np.testing.assert_array_equal(short, long[:before])
