"""mtfzoo compare: training curves and a table from the metrics files of several runs.

Reads only what a run writes for this purpose: metrics.jsonl (training steps),
eval_metrics.jsonl (held-out evaluations) and run.json (sizes and memory).
"""
import json
import math
import os

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top

from mtf_compat import tf  # noqa: E402
from trainer import metrics  # noqa: E402
from trainer.errors import UserError  # noqa: E402

RUN_INFO_FILE = "run.json"
X_AXES = (("step", "step"), ("tokens", "tokens seen"), ("wall_time", "wall time (s)"))


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
          "train": metrics.read_jsonl(path),
          "eval": metrics.read_jsonl(os.path.join(run_dir, metrics.EVAL_FILE)),
          "info": info}


def diverged(run):
  """A run diverged if it met a non-finite loss or ended far above its best loss."""
  losses = [r["loss"] for r in run["train"]]
  if not losses:
    return False
  if any(not math.isfinite(x) for x in losses) or run["train"][-1].get("skipped_steps"):
    return True
  tail = losses[-max(1, len(losses) // 20):]
  return sum(tail) / len(tail) > 1.5 * min(losses)


def x_values(run, records, axis):
  tokens_per_step = (run["info"].get("batch_size", 0)
                     * run["info"].get("sequence_length", 0))
  if axis == "step":
    return [r["step"] for r in records]
  if axis == "tokens":
    return [r["step"] * tokens_per_step for r in records]
  start = run["train"][0]["wall_time"] if run["train"] else 0.0
  return [r["wall_time"] - start for r in records]


def plot(runs, out_dir):
  paths = []
  for axis, label in X_AXES:
    fig, (train_ax, eval_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run in runs:
      train_ax.plot(x_values(run, run["train"], axis), [r["bpc"] for r in run["train"]],
                    label=run["name"], linewidth=1)
      if run["eval"]:
        eval_ax.plot(x_values(run, run["eval"], axis),
                     [r["eval_bpc"] for r in run["eval"]], marker="o",
                     label=run["name"])
    train_ax.set_title("training loss (bits per byte)")
    eval_ax.set_title("held-out bits per byte")
    for ax in (train_ax, eval_ax):
      ax.set_xlabel(label)
      ax.grid(alpha=0.3)
      ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out_dir, "bpc_vs_%s.png" % axis)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
  return paths


def fmt(value, spec):
  return "-" if value is None else format(value, spec)


def table(runs):
  rows = ["| run | params | final held-out bpc | best held-out bpc | tokens/s | "
          "peak memory (MB) | optimizer state (MB) | diverged |",
          "|---|---:|---:|---:|---:|---:|---:|---|"]
  for run in runs:
    evals = [r["eval_bpc"] for r in run["eval"]]
    speeds = [r["tokens_per_sec"] for r in run["train"][1:]] or [
        r["tokens_per_sec"] for r in run["train"]]
    peak = max((r.get("peak_rss_bytes", 0) for r in run["train"]), default=0)
    info = run["info"]
    rows.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
        run["name"], fmt(info.get("params"), ","),
        fmt(evals[-1] if evals else None, ".3f"), fmt(min(evals) if evals else None,
                                                      ".3f"),
        fmt(sorted(speeds)[len(speeds) // 2] if speeds else None, ",.0f"),
        fmt(peak / 1e6 if peak else None, ".0f"),
        fmt(info["optimizer_state_bytes"] / 1e6 if "optimizer_state_bytes" in info
            else None, ".2f"),
        "yes" if diverged(run) else "no"))
  return "\n".join(rows) + "\n"


def compare(run_dirs, out_dir):
  runs = [load_run(d) for d in run_dirs]
  tf.io.gfile.makedirs(out_dir)
  paths = plot(runs, out_dir)
  with tf.io.gfile.GFile(os.path.join(out_dir, "table.md"), "w") as f:
    f.write(table(runs))
  print("wrote %s and %s" % (", ".join(paths), os.path.join(out_dir, "table.md")))
