"""make bench-length's report: mtfzoo bench records of each model at several contexts
(one JSON line per model and context, the same tokens per step at each) -> length.png
(tokens/s and activation bytes per sequence against context length, log-log, one line
per model) and length.md (the table, with the ratios that show how each model scales).

  python -m reports.bench_length bench/length.jsonl bench/

Activation bytes per sequence = activation_bytes / batch_size: a [length, length] map
per head makes them grow as length², a state of fixed size as length. Per step, at a
constant batch·length, the same maps grow as length and the rest stays flat.
"""
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top

from reports import report_files  # noqa: E402

BASE = "transformer"  # the model the tokens/s ratio divides by


def per_sequence(record):
  return record["activation_bytes"] / record["batch_size"]


PANELS = (("tokens/s (training)", lambda r: r["tokens_per_sec"]),
          ("activation bytes per sequence", per_sequence))


def by_model(records):
  """{model: its records sorted by context length}, models in their first-seen order."""
  models = {}
  for r in records:
    models.setdefault(r["model"], []).append(r)
  return {m: sorted(rs, key=lambda r: r["sequence_length"]) for m, rs in models.items()}


def figure(records):
  """The two panels, each with one line per model."""
  fig, axes = plt.subplots(1, len(PANELS), figsize=(12, 5))
  for ax, (label, value) in zip(axes, PANELS):
    for i, (model, rows) in enumerate(by_model(records).items()):
      ax.plot([r["sequence_length"] for r in rows], [value(r) for r in rows],
              label=model, **report_files.series_style(i))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context length (bytes)")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3, which="both")
  axes[0].legend(fontsize=7)
  first = records[0]
  fig.suptitle("%s tokens per step (batch · context), %d blocks" % (
      f"{first['batch_size'] * first['sequence_length']:,}", first["num_layers"]))
  fig.tight_layout()
  return fig


def plot(records, path):
  fig = figure(records)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def table(records):
  """One row per model: its values at every context, the activation ratios of the
  longest context to the shortest, and tokens/s over BASE's at each context. The
  matmul FLOPs per token of a training step (bench.contraction_flops) are the cost
  that the machine's load does not move."""
  lengths = sorted({r["sequence_length"] for r in records})
  shortest, longest = lengths[0], lengths[-1]
  models = by_model(records)
  base = {r["sequence_length"]: r for r in models.get(BASE, [])}
  at = " / ".join("%d" % n for n in lengths)

  def cells(rows, fmt, value):
    known = {r["sequence_length"]: r for r in rows}
    return " / ".join(fmt % value(known[n]) if n in known else "-" for n in lengths)

  def ratio(rows, value, numerator, denominator):
    known = {r["sequence_length"]: r for r in rows}
    if numerator in known and denominator in known:
      return "%.1f" % (value(known[numerator]) / value(known[denominator]))
    return "-"

  def over_base(rows, n):
    known = {r["sequence_length"]: r for r in rows}
    if n in known and n in base:
      return "%.2f" % (known[n]["tokens_per_sec"] / base[n]["tokens_per_sec"])
    return "-"

  header = ["model", "d_model", "params at %s" % at, "tokens/s at %s" % at,
            "× %s at %s" % (BASE, at),
            "matmul MFLOPs per token at %s" % at,
            "activations per step (MB) at %s" % at,
            "per step %d / %d" % (longest, shortest),
            "activations per sequence (MB) at %s" % at,
            "per sequence %d / %d" % (longest, shortest),
            "decoding state per sequence (KB) at %s" % at]
  rows = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
  for model, rs in models.items():
    rows.append("| " + " | ".join([
        model,
        " / ".join(sorted({"%d" % r["d_model"] for r in rs})),
        cells(rs, "%s", lambda r: f"{r['params']:,}"),
        cells(rs, "%.0f", lambda r: r["tokens_per_sec"]),
        " / ".join(over_base(rs, n) for n in lengths),
        cells(rs, "%.1f", lambda r: r["flops_per_token"] / 1e6),
        cells(rs, "%.0f", lambda r: r["activation_bytes"] / 1e6),
        ratio(rs, lambda r: r["activation_bytes"], longest, shortest),
        cells(rs, "%.1f", lambda r: per_sequence(r) / 1e6),
        ratio(rs, per_sequence, longest, shortest),
        cells(rs, "%.1f", lambda r: r["decoding_state_bytes"] / 1e3),
    ]) + " |")
  first = records[0]
  return ("Training at %s tokens per step (batch · context); each model keeps one "
          "d_model at every context. Context %d / %d = %d: activation bytes that "
          "grow as length² per sequence give a ratio near %d, as length near %d.\n\n"
          % (f"{first['batch_size'] * first['sequence_length']:,}", longest, shortest,
             longest // shortest, (longest // shortest) ** 2, longest // shortest)
          + "\n".join(rows) + "\n")


def write_report(records_path, out_dir):
  return report_files.write_report(records_path, out_dir, "length", plot, table)


if __name__ == "__main__":
  print("wrote %s" % " and ".join(write_report(sys.argv[1], sys.argv[2])))
