"""make recall's report: mtfzoo synthetic records (one JSON line per model and d_model)
-> recall.png (held-out accuracy against d_model and against the decoding state per
sequence, one line per model, and mqar's level without recall) and recall.md (the
table).

  python -m reports.recall recall/recall.jsonl report/
"""
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top

from data import synthetic  # noqa: E402
from reports import report_files  # noqa: E402
from reports.synthetic import HELD_OUT_SEQUENCES  # noqa: E402

X_AXES = (("d_model", "d_model", "log"),  # 64, 128, 256: evenly spaced
          ("state_bytes_per_sequence", "decoding state per sequence (bytes)", "log"))


def by_model(records):
  """{model: its records sorted by d_model}, models in their first-seen order."""
  models = {}
  for r in records:
    models.setdefault(r["model"], []).append(r)
  return {m: sorted(rs, key=lambda r: r["d_model"]) for m, rs in models.items()}


def accuracy_without_recall(records):
  """mqar's score for a reader that counts but never recalls, on held-out sequences
  like the runs' (None for the other tasks): the level above which a model recalls."""
  first = records[0]
  if first["task"] != "mqar":
    return None
  generate = synthetic.make_task("mqar", first["sequence_length"], first["num_pairs"])
  held_out = synthetic.sequences(generate, 0, synthetic.HELD_OUT_STREAM, 0,
                                 HELD_OUT_SEQUENCES)  # --seed 0's, as make recall
  return synthetic.mqar_accuracy_without_recall(*held_out, first["num_pairs"])


def plot(records, path):
  floor = accuracy_without_recall(records)
  fig, axes = plt.subplots(1, len(X_AXES), figsize=(14, 4.5))
  for ax, (key, label, scale) in zip(axes, X_AXES):
    for i, (model, rows) in enumerate(by_model(records).items()):
      ax.plot([r[key] for r in rows], [r["accuracy"] for r in rows], label=model,
              **report_files.series_style(i))
    if floor is not None:
      ax.axhline(floor, color="grey", linestyle="-.", linewidth=1,
                 label="counting, no recall (%.3f)" % floor)
    ax.set_xscale(scale, **({"base": 2} if scale == "log" else {}))
    ax.set_xlabel(label)
    ax.set_ylabel("held-out accuracy at the answers")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
  fig.legend(*axes[0].get_legend_handles_labels(), loc="center right", fontsize=8)
  task = records[0]["task"]
  d_models = sorted({r["d_model"] for r in records})
  fig.suptitle("%s, context %d, %d steps%s" % (task, records[0]["sequence_length"],
                                              records[0]["steps"],
                                              learning_rate_note(records, d_models)))
  fig.tight_layout(rect=(0, 0, 0.82, 1))  # the legend's column on the right
  fig.savefig(path, dpi=110)
  plt.close(fig)


def learning_rate_note(records, d_models):
  """', learning rate 0.003 / 0.0015 by d_model' from the records' peak learning rates
  (every value a width was run at; '' when a record predates the key)."""
  if any("learning_rate" not in r for r in records):
    return ""
  rates = {d: sorted({r["learning_rate"] for r in records if r["d_model"] == d})
           for d in d_models}
  return ", learning rate %s by d_model" % " / ".join(
      " or ".join("%g" % x for x in rates[d]) for d in d_models)


def table(records):
  d_models = sorted({r["d_model"] for r in records})
  rows = ["| model | " + " | ".join("d_model %d" % d for d in d_models)
          + " | state per sequence (KB) | params | tokens/s |",
          "|---|" + "---:|" * (len(d_models) + 3)]
  for model, rs in by_model(records).items():
    accuracy = {r["d_model"]: "%.3f" % r["accuracy"] for r in rs}
    rows.append("| %s | %s | %s | %s | %s |" % (
        model, " | ".join(accuracy.get(d, "-") for d in d_models),
        " / ".join("%.0f" % (r["state_bytes_per_sequence"] / 1024) for r in rs),
        " / ".join(f"{r['params']:,}" for r in rs),
        " / ".join("%.0f" % r["tokens_per_sec"] if r["tokens_per_sec"] else "-"
                   for r in rs)))
  first = records[0]
  pairs = (", %d key-value pairs" % first["num_pairs"]) if "num_pairs" in first else ""
  floor = accuracy_without_recall(records)
  counting = ("; a model that counts which values were answered but never matches a "
              "query to its key scores at best %.3f (guessing: 1/%d = %.3f)"
              % (floor, first["num_pairs"], 1 / first["num_pairs"])
              if floor is not None else "")
  return ("Held-out accuracy at the answers of %s (context %d%s, %d steps%s)%s; the last "
          "columns list each d_model's value in order.\n\n"
          % (first["task"], first["sequence_length"], pairs, first["steps"],
             learning_rate_note(records, d_models), counting)
          + "\n".join(rows) + "\n")


def write_report(records_path, out_dir):
  return report_files.write_report(records_path, out_dir, "recall", plot, table)


if __name__ == "__main__":
  print("wrote %s" % " and ".join(write_report(sys.argv[1], sys.argv[2])))
