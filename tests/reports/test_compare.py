"""mtfzoo compare: PNG plots and a table of two real runs; one-line errors."""
import json

import numpy as np
import pytest
from PIL import Image

from tests import cli_testing as cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RUNS = {"attention": "gin/models/transformer.gin", "mixer": "gin/models/mixer.gin"}


def table_rows(path):
  """table.md -> (header cells, [row cells]) of its one markdown table."""
  lines = [l for l in path.read_text().splitlines() if l.strip()]
  cells = [[c.strip() for c in l.strip().strip("|").split("|")] for l in lines]
  assert set("".join(cells[1])) <= set("-: ")  # the |---|---:| separator
  return cells[0], cells[2:]


@pytest.mark.slow
def test_compare_writes_plots_and_a_table_of_the_runs(tmp_path):
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  for name, gin_file in RUNS.items():
    cli.train(tmp_path / name, "run.corpus = '%s'" % corpus, "run.train_steps = 4",
              "run.eval_every = 2", gin_file=gin_file)
  out = tmp_path / "report"
  cli.mtfzoo("compare", *[tmp_path / name for name in RUNS], "--out", out)

  pngs = sorted(out.glob("*.png"))
  assert [p.name for p in pngs] == ["bpc_vs_step.png", "bpc_vs_tokens.png",
                                    "bpc_vs_wall_time.png"]
  for png in pngs:
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(png) as image:
      image.load()
      assert image.format == "PNG"
      assert image.width >= 600 and image.height >= 300, image.size
      pixels = np.asarray(image.convert("L"))
    # Axes, text and curves on a white background: not a blank canvas.
    assert (pixels < 128).mean() > 0.001 and len(np.unique(pixels)) > 10

  header, rows = table_rows(out / "table.md")
  assert header[:3] == ["run", "params", "final held-out bpc"]
  assert [row[0] for row in rows] == list(RUNS)
  params = set()
  for row in rows:
    run = tmp_path / row[0]
    info = json.loads((run / "run.json").read_text())
    evals = cli.metrics(run, "eval_metrics.jsonl")
    assert [r["step"] for r in evals] == [2, 4]
    assert int(row[1].replace(",", "")) == info["params"]
    assert float(row[2]) == pytest.approx(evals[-1]["eval_bpc"], abs=5e-4)
    params.add(info["params"])
  assert len(params) == 2  # the rows are the two different models, not one twice


@pytest.mark.parametrize("where", ["empty", "missing"])
def test_compare_of_a_directory_without_metrics_exits_2_with_one_line(tmp_path, where):
  run = tmp_path / "not_a_run"
  if where == "empty":
    run.mkdir()
  out = tmp_path / "report"
  result = cli.mtfzoo("compare", run, "--out", out, check=False)
  assert result.returncode == 2
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr
  assert result.stderr.startswith("mtfzoo compare: ")
  assert "not_a_run" in result.stderr and "metrics.jsonl" in result.stderr
  assert not out.exists()
