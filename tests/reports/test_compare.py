"""mtfzoo compare: PNG plots and a table of two real runs; one-line errors."""
import json
import os

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
    # The machine each run trained on, with its matmul speed beside the CPU time.
    assert info["machine"]["cores"] == os.cpu_count() and info["machine"]["cpu"]
    assert (float(row[header.index("machine matmul GFLOP/s")])
            == pytest.approx(info["machine"]["matmul_flops"] / 1e9, abs=0.5))
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


def write_run(run_dir, eval_bpcs, eval_every=10, cpu=None):
  """A run's records as training writes them: a train step per step, an evaluation
  every eval_every steps with the given held-out bpcs."""
  run_dir.mkdir(parents=True)
  steps = eval_every * len(eval_bpcs)
  with open(run_dir / "metrics.jsonl", "w") as f:
    for step in range(1, steps + 1):
      f.write(json.dumps({"step": step, "loss": 2.0, "bpc": 3.0 - step / steps,
                          "tokens_per_sec": 1000.0 + step,
                          "wall_time": 100.0 + step}) + "\n")
  with open(run_dir / "eval_metrics.jsonl", "w") as f:
    for i, bpc in enumerate(eval_bpcs):
      f.write(json.dumps({"step": eval_every * (i + 1), "eval_bpc": bpc,
                          "wall_time": 100.0 + eval_every * (i + 1)}) + "\n")
  (run_dir / "run.json").write_text(json.dumps({"params": 1234, "batch_size": 2,
                                                "sequence_length": 8}))
  if cpu is not None:  # two sittings, and the line time(1) adds after a failure
    (run_dir / "cpu_time.jsonl").write_text(
        "Command exited with non-zero status 1\n" + "".join(
            json.dumps({"user_seconds": u, "system_seconds": s, "wall_seconds": 1.0})
            + "\n" for u, s in cpu))


def test_seeds_of_an_experiment_become_one_row_with_mean_and_spread(tmp_path):
  """experiments.md: final held-out bpc mean and min-max over an experiment's seed<k>
  runs, computed here with numpy from the records; CPU time summed over sittings; a
  single run is an experiment of one seed. The plots draw the seed band."""
  from reports import compare
  finals = {"mixer": [2.31, 2.12, 2.47], "gmlp": [2.05]}
  cpu = [(100.0, 20.0), (50.0, 10.0)]
  dirs = []
  for name, values in finals.items():
    for seed, final in enumerate(values):
      dirs.append(tmp_path / "runs" / name / ("seed%d" % seed))
      write_run(dirs[-1], [3.0 + seed, final], cpu=cpu)
  out = tmp_path / "report"
  compare.compare([str(d) for d in dirs], str(out))

  header, rows = table_rows(out / "experiments.md")
  assert header[:5] == ["experiment", "seeds", "final held-out bpc: mean", "min",
                        "max"]
  assert [row[0] for row in rows] == list(finals)
  for row, values in zip(rows, finals.values()):
    assert int(row[1]) == len(values)
    assert [float(c) for c in row[2:5]] == pytest.approx(
        [np.mean(values), np.min(values), np.max(values)], abs=5e-4)
    assert float(row[6]) == pytest.approx((120.0 + 60.0) / 60, abs=0.05)
  run_header, run_rows = table_rows(out / "table.md")
  assert [row[0] for row in run_rows] == ["mixer/seed0", "mixer/seed1", "mixer/seed2",
                                          "gmlp/seed0"]
  assert float(run_rows[1][run_header.index("CPU time (min)")]) == pytest.approx(3.0)

  runs = [compare.load_run(str(d)) for d in dirs[:3]]
  x, mean, low, high = compare.seed_band(runs, "eval", "step")
  assert x == [10, 20]
  assert mean == pytest.approx([np.mean([3.0, 4.0, 5.0]), np.mean(finals["mixer"])])
  assert (low, high) == ([3.0, min(finals["mixer"])], [5.0, max(finals["mixer"])])


def test_plots_of_seed_groups_keep_their_axes_and_legends(tmp_path, monkeypatch):
  """Each bpc_vs_<axis>.png names its x axis on both panels, and its one legend names
  every experiment (a seed group as "name (k seeds)") whatever the mix of groups and
  single runs."""
  from matplotlib.figure import Figure
  from reports import compare
  drawn = {}

  def savefig(figure, path, **kwargs):
    [legend] = figure.legends
    drawn[str(path).rsplit("/", 1)[-1]] = [
        (ax.get_xlabel(), [t.get_text() for t in legend.get_texts()])
        for ax in figure.axes]

  monkeypatch.setattr(Figure, "savefig", savefig)
  dirs = [tmp_path / "runs" / "mixer" / ("seed%d" % s) for s in range(2)]
  dirs.append(tmp_path / "runs" / "gmlp" / "seed0")
  for d in dirs:
    write_run(d, [3.0, 2.5])
  compare.compare([str(d) for d in dirs], str(tmp_path / "report"))
  assert sorted(drawn) == sorted("bpc_vs_%s.png" % a for a, _ in compare.X_AXES)
  for axis, axis_label in compare.X_AXES:
    for xlabel, legend in drawn["bpc_vs_%s.png" % axis]:
      assert xlabel == axis_label
      assert legend == ["mixer (2 seeds)", "gmlp/seed0"]



def test_every_experiment_gets_its_own_colour_and_line_style(tmp_path, monkeypatch):
  """Past matplotlib's 10 colours, the 11th and 12th experiments (one a seed group) are
  told from the 1st and 2nd by their line style, in both panels."""
  from matplotlib.figure import Figure
  from reports import compare
  drawn = []

  def savefig(figure, path, **kwargs):
    legend_names = [t.get_text() for t in figure.legends[0].get_texts()]
    for ax in figure.axes:
      styles = {line.get_label(): (line.get_color(), line.get_linestyle())
                for line in ax.get_lines() if line.get_label() in legend_names}
      drawn.append(styles)

  monkeypatch.setattr(Figure, "savefig", savefig)
  dirs = [tmp_path / ("run%02d" % i) for i in range(11)]
  dirs += [tmp_path / "group" / ("seed%d" % s) for s in range(2)]
  for d in dirs:
    write_run(d, [3.0, 2.5])
  compare.compare([str(d) for d in dirs], str(tmp_path / "report"))
  assert drawn
  for styles in drawn:
    assert len(styles) == 12
    assert len(set(styles.values())) == 12, styles


def test_the_table_shows_each_runs_largest_training_loss_spike(tmp_path):
  """A falling training bpc with a planted rise of 1.5 at step 300 (recovered from by
  the end), a larger one at step 50 in the steep start (not counted), and a non-finite
  step: the table gives the planted rise and its step; a run without one shows no more
  than its fall's noise."""
  from reports import compare
  steps = np.arange(1, 1001)
  smooth = 4.0 - 0.002 * steps
  spiked = smooth.copy()
  spiked[steps == 50] += 3.0
  spiked[(steps >= 300) & (steps < 310)] += 1.5 * np.linspace(1, 0.1, 10)
  spiked[steps == 600] = np.nan
  for name, bpcs in (("spiked", spiked), ("smooth", smooth)):
    run_dir = tmp_path / name
    write_run(run_dir, [2.0])
    with open(run_dir / "metrics.jsonl", "w") as f:
      for step, bpc in zip(steps, bpcs):
        f.write(json.dumps({"step": int(step), "loss": float(bpc) * 0.69, "bpc": float(bpc),
                            "tokens_per_sec": 1000.0, "wall_time": float(step)}) + "\n")
  out = tmp_path / "report"
  compare.compare([str(tmp_path / "spiked"), str(tmp_path / "smooth")], str(out))
  header, rows = table_rows(out / "table.md")
  column = header.index("largest training bpc spike (step)")
  rise, step = rows[0][column].split()
  assert float(rise) == pytest.approx(1.5, abs=0.01) and step == "(300)"
  assert float(rows[1][column].split()[0]) <= 0.0
