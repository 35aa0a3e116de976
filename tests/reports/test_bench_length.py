"""make bench-length's report: each model's values at each context, the ratios of the
longest context to the shortest, and tokens/s over the Transformer's."""
import json

import matplotlib.pyplot as plt
import pytest

from reports import bench_length

TOKENS = 4096


def record(model, length, tokens_per_sec, activation_bytes, state_bytes=1000):
  return {"model": model, "sequence_length": length, "batch_size": TOKENS // length,
          "d_model": 128, "params": 1000 + length, "num_layers": 4,
          "tokens_per_sec": tokens_per_sec, "activation_bytes": activation_bytes,
          "flops_per_token": 1e6 * length / 128,
          "decoding_state_bytes": state_bytes}


# Two models at three contexts, listed out of order: the Transformer's activations
# per step grow with the context, linear attention's stay flat.
RECORDS = [
    record("linear_attention", 2048, 3000.0, 4e8),
    record("transformer", 128, 8000.0, 4e8),
    record("linear_attention", 128, 6000.0, 4e8),
    record("transformer", 2048, 1000.0, 28e8, state_bytes=16000),
    record("transformer", 512, 4000.0, 8e8, state_bytes=4000),
    record("linear_attention", 512, 5000.0, 4e8),
]


def rows(markdown):
  lines = [l for l in markdown.splitlines() if l.startswith("| ")]
  cells = [[c.strip() for c in l.strip("|").split("|")] for l in lines]
  header = cells[0]
  return header, {r[0]: dict(zip(header, r)) for r in cells[1:]}


def test_table_has_a_row_per_model_with_its_values_in_context_order():
  header, by_model = rows(bench_length.table(RECORDS))
  assert list(by_model) == ["linear_attention", "transformer"]
  transformer = by_model["transformer"]
  assert transformer["tokens/s at 128 / 512 / 2048"] == "8000 / 4000 / 1000"
  assert transformer["matmul MFLOPs per token at 128 / 512 / 2048"] == "1.0 / 4.0 / 16.0"
  assert transformer["activations per step (MB) at 128 / 512 / 2048"] == "400 / 800 / 2800"
  # Per sequence: batch 32, 8, 2.
  assert (transformer["activations per sequence (MB) at 128 / 512 / 2048"]
          == "12.5 / 100.0 / 1400.0")
  assert (transformer["decoding state per sequence (KB) at 128 / 512 / 2048"]
          == "1.0 / 4.0 / 16.0")


def test_table_ratios_are_longest_over_shortest_context_and_over_the_transformer():
  _, by_model = rows(bench_length.table(RECORDS))
  transformer, linear = by_model["transformer"], by_model["linear_attention"]
  assert transformer["per step 2048 / 128"] == "7.0"  # 2800 / 400 MB
  assert transformer["per sequence 2048 / 128"] == "112.0"  # 1400 / 12.5 MB
  assert linear["per step 2048 / 128"] == "1.0"
  assert linear["per sequence 2048 / 128"] == "16.0"  # (400 / 2) / (400 / 32)
  assert linear["× transformer at 128 / 512 / 2048"] == "0.75 / 1.25 / 3.00"
  assert transformer["× transformer at 128 / 512 / 2048"] == "1.00 / 1.00 / 1.00"


def test_a_missing_point_is_a_dash_not_a_shifted_column():
  records = [r for r in RECORDS
             if not (r["model"] == "linear_attention" and r["sequence_length"] == 512)]
  _, by_model = rows(bench_length.table(records))
  assert by_model["linear_attention"]["tokens/s at 128 / 512 / 2048"] == "6000 / - / 3000"
  assert by_model["linear_attention"]["× transformer at 128 / 512 / 2048"] == (
      "0.75 / - / 3.00")


@pytest.mark.parametrize("panel,value", [
    (0, lambda r: r["tokens_per_sec"]),
    (1, lambda r: r["activation_bytes"] / r["batch_size"]),
])
def test_plot_draws_one_line_per_model_through_its_values(panel, value):
  fig = bench_length.figure(RECORDS)
  lines = {l.get_label(): l for l in fig.axes[panel].get_lines()}
  plt.close(fig)
  assert sorted(lines) == ["linear_attention", "transformer"]
  for model, line in lines.items():
    mine = sorted((r for r in RECORDS if r["model"] == model),
                  key=lambda r: r["sequence_length"])
    assert list(line.get_xdata()) == [128, 512, 2048]
    assert list(line.get_ydata()) == [value(r) for r in mine]


def test_write_report_writes_the_png_and_the_table(tmp_path):
  path = tmp_path / "length.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
  bench_length.write_report(str(path), str(tmp_path / "out"))
  assert (tmp_path / "out" / "length.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert (tmp_path / "out" / "length.md").read_text() == bench_length.table(RECORDS)
