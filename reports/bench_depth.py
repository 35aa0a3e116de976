"""mtfzoo bench --depths: activation memory and training speed against depth for each
way of keeping activations (GPT.residual_stream, GPT.recompute_blocks).

Activation memory is counted on the mtf graph (trainer/model_summary.py): `activation
bytes` every forward tensor, `kept activation bytes` the forward tensors the backward
pass reads, which training must keep alive until then. Storing every block keeps
memory linear in depth; recomputed blocks keep each block's input; reversible streams
keep the last block's outputs only.

`python -m reports.bench_depth RECORDS.jsonl OUT_DIR` writes depth.md (the table, and
each stream's tokens/s over the standard stream's) and depth.png.
"""
import json
import os
import sys

import gin

from reports import bench as bench_lib
from trainer import model_summary

STREAMS = {  # name -> the bindings that select it
    "standard": {"GPT.residual_stream": "standard", "GPT.recompute_blocks": False},
    "recompute": {"GPT.residual_stream": "standard", "GPT.recompute_blocks": True},
    "revnet": {"GPT.residual_stream": "revnet", "GPT.recompute_blocks": False},
    "momentum": {"GPT.residual_stream": "momentum", "GPT.recompute_blocks": False},
}


def bench_depth(settings, depths, warmup=5, steps=20, out=sys.stdout):
  """Prints one JSON record per (stream, depth): parameters, activation and kept
  activation bytes, tokens/s and step time of the training step."""
  records = []
  for depth in depths:  # the streams of one depth run one after another: comparable
    for stream, bindings in STREAMS.items():
      with gin.unlock_config():
        for name, value in dict(bindings, **{"GPT.num_layers": depth}).items():
          gin.bind_parameter(name, value)
      summary = model_summary.summarize(settings)
      step_time = bench_lib.train_step_time(settings, warmup, steps)
      record = {"stream": stream, "num_layers": depth, "d_model": summary.d_model,
                "params": summary.params, "sequence_length": settings.sequence_length,
                "batch_size": settings.batch_size,
                "activation_bytes": summary.activation_bytes,
                "kept_activation_bytes": summary.kept_activation_bytes,
                "tokens_per_sec": settings.tokens_per_step / step_time,
                "step_time_s": step_time}
      print(json.dumps(record), file=out, flush=True)
      records.append(record)
  return records


def table(records):
  """Markdown: a row per stream and depth; kept bytes against the stream's shallowest
  and tokens/s against the standard stream at the same depth."""
  standard = {r["num_layers"]: r for r in records if r["stream"] == "standard"}
  shallowest = {}
  for r in sorted(records, key=lambda r: r["num_layers"]):
    shallowest.setdefault(r["stream"], r)
  rows = ["| stream | blocks | params | activations (MB) | kept for backward (MB) | "
          "kept / kept at %d blocks | tokens/s | × standard |"
          % min(r["num_layers"] for r in records),
          "|---|---:|---:|---:|---:|---:|---:|---:|"]
  for r in records:
    base = standard.get(r["num_layers"])
    rows.append("| %s | %d | %s | %.1f | %.1f | %.2f | %.0f | %s |" % (
        r["stream"], r["num_layers"], f"{r['params']:,}", r["activation_bytes"] / 1e6,
        r["kept_activation_bytes"] / 1e6,
        r["kept_activation_bytes"] / shallowest[r["stream"]]["kept_activation_bytes"],
        r["tokens_per_sec"],
        "%.2f" % (r["tokens_per_sec"] / base["tokens_per_sec"]) if base else "–"))
  return "\n".join(rows)


def plot(records, path):
  """Kept activation MB and tokens/s against blocks, one line per stream."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")  # files only, no display
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, (memory, speed) = plt.subplots(1, 2, figsize=(10, 4))
  for stream in STREAMS:
    rows = sorted((r for r in records if r["stream"] == stream),
                  key=lambda r: r["num_layers"])
    if not rows:
      continue
    depths = [r["num_layers"] for r in rows]
    memory.plot(depths, [r["kept_activation_bytes"] / 1e6 for r in rows], "o-",
                label=stream)
    speed.plot(depths, [r["tokens_per_sec"] for r in rows], "o-", label=stream)
  for axis, label in ((memory, "activations kept for the backward pass (MB)"),
                      (speed, "training tokens/s")):
    axis.set_xscale("log", base=2)
    axis.set_xlabel("blocks")
    axis.set_ylabel(label)
    axis.grid(True, alpha=0.3)
    axis.legend()
  memory.set_ylim(bottom=0)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


if __name__ == "__main__":
  with open(sys.argv[1]) as f:
    loaded = [json.loads(line) for line in f if line.strip()]
  os.makedirs(sys.argv[2], exist_ok=True)
  with open(os.path.join(sys.argv[2], "depth.md"), "w") as f:
    f.write(table(loaded) + "\n")
  plot(loaded, os.path.join(sys.argv[2], "depth.png"))
  print(table(loaded))
