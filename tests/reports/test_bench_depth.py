"""The depth table: kept activation bytes against the stream's shallowest run, tokens/s
against the standard stream at the same depth."""
from reports import bench_depth


def record(stream, blocks, kept, tokens_per_sec):
  return {"stream": stream, "num_layers": blocks, "params": 1000 * blocks,
          "activation_bytes": 3 * kept, "kept_activation_bytes": kept,
          "tokens_per_sec": tokens_per_sec}


def rows(table):
  """{(stream, blocks): (kept ratio, speed ratio)} from the markdown table."""
  out = {}
  for line in table.splitlines()[2:]:
    cells = [c.strip() for c in line.strip("|").split("|")]
    out[cells[0], int(cells[1])] = (float(cells[5]), float(cells[7]))
  return out


def test_table_divides_kept_bytes_by_the_shallowest_and_speed_by_standard():
  records = [record("standard", 4, 4e6, 1000.0), record("revnet", 4, 1e6, 800.0),
             record("standard", 8, 8e6, 500.0), record("revnet", 8, 1.2e6, 250.0)]
  assert rows(bench_depth.table(records)) == {
      ("standard", 4): (1.0, 1.0), ("revnet", 4): (1.0, 0.8),
      ("standard", 8): (2.0, 1.0), ("revnet", 8): (1.2, 0.5)}
