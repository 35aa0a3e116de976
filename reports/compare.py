"""mtfzoo compare: training curves and a table from the metrics files of several runs.

Reads only what a run writes for this purpose: metrics.jsonl (training steps),
eval_metrics.jsonl (held-out evaluations), run.json (sizes, memory, the machine) and,
when a batch recorded it, cpu_time.jsonl; and the compressor and n-gram baselines
(`mtfzoo baselines`) of the runs' corpus, from a run directory's baselines.json or a
--baselines file, with the corpus from config.gin.

Seeds: runs in directories named seed<k> under one experiment directory
(docs/runs/mixer/seed0, .../seed1) are one experiment. An experiment of several seeds is
drawn as its mean curve in a band from the lowest to the highest seed, and
experiments.md gives its final held-out bpc as mean and min-max over the seeds.
"""
import ast
import dataclasses
import json
import math
import os
import re

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top

from mtf_compat import tf  # noqa: E402
from reports import baselines as baselines_lib  # noqa: E402
from reports import report_files  # noqa: E402
from trainer import config  # noqa: E402
from trainer import metrics  # noqa: E402
from trainer.errors import UserError  # noqa: E402
from trainer.run import Run  # noqa: E402

RUN_INFO_FILE = "run.json"
CPU_TIME_FILE = "cpu_time.jsonl"  # /usr/bin/time's record of the training command
SEED_DIR = re.compile(r"^seed\d+$")
X_AXES = (("step", "step"), ("tokens", "tokens seen"), ("wall_time", "wall time (s)"))
# Baseline lines: dashed for a compressor alone, dotted given the training split.
BASELINE_STYLE = {
    "gzip": ("0.55", "--"), "gzip_conditioned": ("0.55", ":"),
    "bzip2": ("tab:brown", "--"), "bzip2_conditioned": ("tab:brown", ":"),
    "lzma": ("tab:purple", "--"), "lzma_conditioned": ("tab:purple", ":"),
    "ngram": ("black", "-."),
}
CORPUS_BINDING = re.compile(r"^run\.corpus\s*=\s*(.+?)\s*$", re.MULTILINE)
DEFAULT_CORPUS = {f.name: f.default for f in dataclasses.fields(Run)}["corpus"]


def load_run(run_dir):
  path = os.path.join(run_dir, metrics.METRICS_FILE)
  if not tf.io.gfile.exists(path):
    raise UserError("%r has no %s: is it a training run directory?"
                    % (run_dir, metrics.METRICS_FILE))
  info_path = os.path.join(run_dir, RUN_INFO_FILE)
  info = {}
  if tf.io.gfile.exists(info_path):
    with tf.io.gfile.GFile(info_path) as f:
      info = json.load(f)
  return {"name": os.path.basename(os.path.normpath(run_dir)),
          "experiment": experiment_name(run_dir),
          "train": metrics.read_jsonl(path),
          "eval": metrics.read_jsonl(os.path.join(run_dir, metrics.EVAL_FILE)),
          "info": info, "cpu_seconds": cpu_seconds(run_dir)}


def experiment_name(run_dir):
  """The experiment a run belongs to: the parent directory of a seed<k> directory,
  else the run directory itself."""
  parent, name = os.path.split(os.path.normpath(run_dir))
  return os.path.basename(parent) if SEED_DIR.match(name) and parent else name


def cpu_seconds(run_dir):
  """User + system CPU seconds of the training command(s) that wrote the run, summed
  over the lines of cpu_time.jsonl (a resumed run has one line per sitting); None when
  the run has no such record."""
  path = os.path.join(run_dir, CPU_TIME_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:  # time(1) may add a "Command exited..." line
    records = [json.loads(line) for line in f if line.startswith("{")]
  return sum(r["user_seconds"] + r["system_seconds"] for r in records) or None


def experiments(runs):
  """[(experiment name, [its runs])] in the order the runs were given."""
  groups = {}
  for run in runs:
    groups.setdefault(run["experiment"], []).append(run)
  return list(groups.items())


def seed_band(group, key, axis):
  """(x, mean, min, max) of `key` ('train' bpc or 'eval' eval_bpc) over the runs of a
  group, at the steps every run recorded; x is the mean over the runs of the axis."""
  field = "bpc" if key == "train" else "eval_bpc"
  by_step = [{r["step"]: (x, r[field]) for x, r in
              zip(x_values(run, run[key], axis), run[key])} for run in group]
  steps = sorted(set.intersection(*(set(s) for s in by_step)))
  xs = [[s[step][0] for s in by_step] for step in steps]
  ys = [[s[step][1] for s in by_step] for step in steps]
  return ([sum(x) / len(x) for x in xs], [sum(y) / len(y) for y in ys],
          [min(y) for y in ys], [max(y) for y in ys])


def diverged(run):
  """A run diverged if it met a non-finite loss or ended far above its best loss."""
  losses = [r["loss"] for r in run["train"]]
  if not losses:
    return False
  if any(not math.isfinite(x) for x in losses) or run["train"][-1].get("skipped_steps"):
    return True
  tail = losses[-max(1, len(losses) // 20):]
  return sum(tail) / len(tail) > 1.5 * min(losses)


SPIKE_WINDOW = 50   # logged steps a spike is measured against
SPIKE_AFTER = 100   # steps of the steep initial fall, where every step is a new minimum


def largest_spike(run):
  """(rise, step): the most the training bpc rose above its minimum over the
  SPIKE_WINDOW logged steps before it, after step SPIKE_AFTER; None if no step is.

  Loss spikes that a run recovers from do not show in its final bpc; this shows them
  (batch-to-batch noise alone gives about 0.3 in the long runs of docs/runs/).
  """
  points = [(r["step"], r["bpc"]) for r in run["train"]
            if "bpc" in r and math.isfinite(r["bpc"])]
  best = None
  for i, (step, bpc) in enumerate(points):
    earlier = points[max(0, i - SPIKE_WINDOW):i]
    if step <= SPIKE_AFTER or not earlier:
      continue
    rise = bpc - min(b for _, b in earlier)
    if best is None or rise > best[0]:
      best = (rise, step)
  return best


def run_corpus(run_dir):
  """run.corpus as the run's config.gin binds it (Run's default when unbound), or None
  when the directory has no config.gin."""
  saved = config.saved_config(run_dir)
  if saved is None:
    return None
  match = CORPUS_BINDING.search(saved.replace("\\\n", " "))  # gin wraps long values
  return corpus_key(ast.literal_eval(match.group(1)) if match else DEFAULT_CORPUS)


def corpus_key(corpus):
  return corpus if corpus == DEFAULT_CORPUS else os.path.normpath(corpus)


def unique_names(run_dirs):
  """Each run's name: its directory's last path component, or as many trailing
  components as make the names distinct (runs/a/seed0 and runs/b/seed0 -> a/seed0...)."""
  parts = [os.path.normpath(d).split(os.sep) for d in run_dirs]
  for depth in range(1, max(len(p) for p in parts) + 1):
    names = ["/".join(p[-depth:]) for p in parts]
    if len(set(names)) == len(names):
      return names
  return names


def load_baselines(run_dirs, baseline_files=()):
  """{corpus: record}, the first record of each corpus: the run directories'
  baselines.json, then the --baselines files (JSON lines)."""
  paths = [os.path.join(d, baselines_lib.BASELINES_FILE) for d in run_dirs]
  paths = [p for p in paths if tf.io.gfile.exists(p)] + list(baseline_files)
  records = {}
  for path in paths:
    for record in baselines_lib.read_records(path):
      records.setdefault(corpus_key(record["corpus"]), record)
  return records


def drawn_baselines(runs, records):
  """The record whose lines go on the plots: that of the corpus every run trained on.
  Runs on different corpora (or of unknown corpus) share no lines: a horizontal line
  on a shared axis would claim a bound for every curve under it."""
  corpora = {run.get("corpus") for run in runs}
  return records.get(corpora.pop()) if len(corpora) == 1 else None


def baseline_label(record, name):
  if name == "ngram" and "ngram_order" in record:
    return "byte %d-gram (Kneser-Ney)" % record["ngram_order"]
  return baselines_lib.LABELS[name]


def draw_baselines(ax, record):
  for name, (color, style) in BASELINE_STYLE.items():
    if record.get(name) is not None:
      ax.axhline(record[name], color=color, linestyle=style, linewidth=0.9,
                 label="%s %.2f" % (baseline_label(record, name), record[name]))


def x_values(run, records, axis):
  tokens_per_step = (run["info"].get("batch_size", 0)
                     * run["info"].get("sequence_length", 0))
  if axis == "step":
    return [r["step"] for r in records]
  if axis == "tokens":
    return [r["step"] * tokens_per_step for r in records]
  start = run["train"][0]["wall_time"] if run["train"] else 0.0
  return [r["wall_time"] - start for r in records]


def plot(runs, out_dir, baselines=None):
  """bpc_vs_<axis>.png for each x axis; `baselines`, a record, draws its lines."""
  paths = []
  for axis, axis_label in X_AXES:
    fig, (train_ax, eval_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, (name, group) in enumerate(experiments(runs)):
      style = report_files.series_style(i)
      train_style = {"linewidth": 1, "linestyle": style["linestyle"]}
      if len(group) == 1:
        [run] = group
        train_ax.plot(x_values(run, run["train"], axis),
                      [r["bpc"] for r in run["train"]], label=run["name"], **train_style)
        if run["eval"]:
          eval_ax.plot(x_values(run, run["eval"], axis),
                       [r["eval_bpc"] for r in run["eval"]], label=run["name"], **style)
        continue
      label = "%s (%d seeds)" % (name, len(group))
      for ax, key, line_style in ((train_ax, "train", train_style),
                                  (eval_ax, "eval", style)):
        x, mean, low, high = seed_band(group, key, axis)
        if x:
          [line] = ax.plot(x, mean, label=label, **line_style)
          ax.fill_between(x, low, high, color=line.get_color(), alpha=0.25,
                          linewidth=0)
    if baselines:
      for ax in (train_ax, eval_ax):
        draw_baselines(ax, baselines)
    train_ax.set_title("training loss (bits per byte)")
    eval_ax.set_title("held-out bits per byte")
    for ax in (train_ax, eval_ax):
      ax.set_xlabel(axis_label)
      ax.grid(alpha=0.3)
    # One legend for both panels, right of them: inside, a push's flat curves near the
    # top of the held-out panel were hidden behind it.
    handles, labels = train_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5),
               fontsize=8)
    fig.tight_layout()
    path = os.path.join(out_dir, "bpc_vs_%s.png" % axis)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    paths.append(path)
  return paths


def fmt(value, spec):
  return "-" if value is None else format(value, spec)


def median(values):
  return sorted(values)[len(values) // 2] if values else None


def median_speed(run):
  speeds = [r["tokens_per_sec"] for r in run["train"][1:]] or [
      r["tokens_per_sec"] for r in run["train"]]
  return median(speeds)


def table(runs, baselines=()):
  """One row per run, then one per figure of each baseline record (bpc columns only)."""
  rows = ["| run | params | final held-out bpc | best held-out bpc | tokens/s | "
          "peak memory (MB) | optimizer state (MB) | CPU time (min) | "
          "machine matmul GFLOP/s | diverged | largest training bpc spike (step) |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
  for run in runs:
    evals = [r["eval_bpc"] for r in run["eval"]]
    peak = max((r.get("peak_rss_bytes", 0) for r in run["train"]), default=0)
    info = run["info"]
    spike = largest_spike(run)
    matmul_flops = info.get("machine", {}).get("matmul_flops")
    rows.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        run["name"], fmt(info.get("params"), ","),
        fmt(evals[-1] if evals else None, ".3f"), fmt(min(evals) if evals else None,
                                                      ".3f"),
        fmt(median_speed(run), ",.0f"), fmt(peak / 1e6 if peak else None, ".0f"),
        fmt(info["optimizer_state_bytes"] / 1e6 if "optimizer_state_bytes" in info
            else None, ".2f"),
        fmt(run["cpu_seconds"] / 60 if run["cpu_seconds"] else None, ".1f"),
        fmt(matmul_flops / 1e9 if matmul_flops else None, ".0f"),
        "yes" if diverged(run) else "no",
        "-" if spike is None else "%.2f (%d)" % spike))
  for record in baselines:
    for name in BASELINE_STYLE:
      if record.get(name) is not None:
        rows.append("| %s [%s] | - | %.3f | %.3f | - | - | - | - | - | - | - |" % (
            baseline_label(record, name), record["corpus"], record[name], record[name]))
  return "\n".join(rows) + "\n"


def experiments_table(runs):
  """One row per experiment: its final held-out bpc as mean and min-max over its seeds
  (the runs that have an evaluation), how many diverged, and mean CPU time."""
  rows = ["| experiment | seeds | final held-out bpc: mean | min | max | "
          "tokens/s (median) | CPU time per run (min) | diverged |",
          "|---|---:|---:|---:|---:|---:|---:|---:|"]
  for name, group in experiments(runs):
    finals = [run["eval"][-1]["eval_bpc"] for run in group if run["eval"]]
    cpu = [run["cpu_seconds"] for run in group if run["cpu_seconds"]]
    rows.append("| %s | %d | %s | %s | %s | %s | %s | %d |" % (
        name, len(group), fmt(sum(finals) / len(finals) if finals else None, ".3f"),
        fmt(min(finals, default=None), ".3f"), fmt(max(finals, default=None), ".3f"),
        fmt(median([s for s in map(median_speed, group) if s is not None]), ",.0f"),
        fmt(sum(cpu) / len(cpu) / 60 if cpu else None, ".1f"),
        sum(diverged(run) for run in group)))
  return "\n".join(rows) + "\n"


def compare(run_dirs, out_dir, baseline_files=()):
  runs = [load_run(d) for d in run_dirs]
  for run, name, run_dir in zip(runs, unique_names(run_dirs), run_dirs):
    run["name"], run["corpus"] = name, run_corpus(run_dir)
  records = load_baselines(run_dirs, baseline_files)
  drawn = drawn_baselines(runs, records)
  tf.io.gfile.makedirs(out_dir)
  paths = plot(runs, out_dir, drawn)
  with tf.io.gfile.GFile(os.path.join(out_dir, "table.md"), "w") as f:
    f.write(table(runs, list(records.values())))
  written = paths + [os.path.join(out_dir, "table.md")]
  if any(len(group) > 1 for _, group in experiments(runs)):
    written.append(os.path.join(out_dir, "experiments.md"))
    with tf.io.gfile.GFile(written[-1], "w") as f:
      f.write(experiments_table(runs))
  print("wrote %s" % ", ".join(written))
  if records and not drawn:
    print("baselines listed in table.md, not drawn: the runs are not all on one corpus "
          "that has baselines")
