"""mtfzoo bench: speed and memory of one config's training step, and the speed of
sampling from it, as one JSON record.

Absolute times drift on a shared machine, so every figure that matters is a ratio from
one run: `mfu` divides the model's FLOP/s by the best f32 matmul FLOP/s this process
reaches just before, and comparisons between configs divide bench records.
"""
import contextlib
import dataclasses
import json
import resource
import sys
import tempfile
import time

import gin
import numpy as np

from layers import moe_feed_forward
from models import sampling
from models.gpt import GPT
from mtf_compat import mtf, tf
from trainer import loop
from trainer import machine
from trainer import mesh as mesh_lib
from trainer import model_summary
from trainer.errors import UserError
from trainer.estimator import make_estimator
from trainer.model_fn import build_model


class StepTimer(tf.estimator.SessionRunHook):
  """Wall time between consecutive steps after `warmup` steps (input pipeline, hooks
  and all: what training really gets)."""

  def __init__(self, warmup):
    self.warmup = warmup
    self.seen = 0
    self.times = []

  def after_run(self, run_context, run_values):
    self.seen += 1
    if self.seen >= self.warmup:
      self.times.append(time.perf_counter())

  def step_time(self):
    return float(np.median(np.diff(self.times)))


def contraction_flops(settings, batch):
  """Matmul FLOPs of one training step per token, counted on the mtf graph.

  An einsum that contracts a dimension costs 2·Π(sizes of all its dims): a multiply and
  an add per term. Backward computes two products of the same size per forward one
  (the gradients of both operands), so a step is 3 x forward. Per token, with d =
  d_model, f = d_ff, n = the context length, h·d_head = d, L blocks, V = 256:

    projection x·W [a, b] (Q, K, V, O, feed-forward in/out, gMLP in/out):  2ab
    attention Q·Kᵀ and A·V (also CONTAINER, Synthesizer's A·V):            2nd each
    a seq² map W·x over c channels (shared map, each Mixer map, gMLP's     2nc
      spatial map over f/2 or f channels)
    logits x·W_logits:                                                     2dV

  so the Transformer step is 6·N + 12·L·n·d per token (N = 12·L·d² + d·V weights in
  matmuls) and the one-map-pair Mixer's 6·N + 12·L·n·d with N = 8·L·d² + d·V. Causal
  masks zero half of every n x n product but the matmuls still compute it, so it is
  counted. The embedding lookup, a one-hot einsum in mtf, is not model arithmetic and
  is left out, as are elementwise operations.

  A mixture of experts (layers/moe_feed_forward.py) counts its router x·W_router [d, E]
  (2dE) and the work of the two experts each token is routed to, 2 · (2df + 2fd) with
  f = the experts' d_ff, not that of all E experts: its expert einsums run over E·C
  capacity slots per sequence and are scaled to the 2n requests a sequence makes. The
  routing bookkeeping (slots, dispatch, combine: gathers and scatters written as
  matmuls) is left out like the embedding's one-hot.
  """
  with tf.Graph().as_default():
    graph = mtf.Graph()
    mesh = mtf.Mesh(graph, "mesh")
    model, context, token_shape = build_model(settings, mesh, "train", batch)
    model.logits(mtf.zeros(mesh, token_shape, tf.int32), context)
  total = 0
  for op in graph.operations:
    if not isinstance(op, mtf.EinsumOperation):
      continue
    if any(isinstance(x.operation, mtf.OneHotOperation) for x in op.inputs):
      continue
    if "/%s/" % moe_feed_forward.ROUTING in "/" + op.name:
      continue
    dims = set(d for x in op.inputs for d in x.shape.dims)
    if dims - set(op.outputs[0].shape.dims):  # contracts something
      sizes = {d.name: d.size for d in dims}
      routed = 1.0
      if "expert_capacity" in sizes:  # E·C slots per sequence hold its top-k requests
        routed = (moe_feed_forward.TOP_K * settings.sequence_length
                  / (sizes["experts"] * sizes["expert_capacity"]))
      total += 2 * int(np.prod(list(sizes.values()))) * routed
  tokens = batch * settings.sequence_length
  return 3 * total / tokens


@contextlib.contextmanager
def initialized_session(settings, lowering):
  """A session on the run's devices, its variables initialised and copied to the mesh
  slices of `lowering`: the state in which the sampler's runs are timed."""
  config = mesh_lib.session_config(settings.layout.num_devices,
                                   settings.intra_op_threads, settings.inter_op_threads)
  with tf.Session(config=config) as session:
    session.run(tf.global_variables_initializer())
    session.run(lowering.copy_masters_to_slices())
    yield session


def sampling_speed(settings, repeats=10):
  """Bytes/s of sampling one row (as `mtfzoo sample` does) from a fresh model.

  Each run generates half a window: from a 1-byte prompt (positions 0 .. L/2 - 1, the
  early half) or from an L/2 + 1-byte prompt (the late half), so the late/early time
  ratio shows whether a byte costs more further into the window (1.0: it does not).
  Every run also pays one prefill over the window. `recompute` is the full-window
  sampler on the early half, for the speed-up.
  """
  half = settings.sequence_length // 2
  batch = settings.layout.split("batch")
  with tf.Graph().as_default():
    graph = mtf.Graph()
    mesh = mtf.Mesh(graph, "mesh")
    model, context, token_shape = build_model(settings, mesh, "predict", batch)
    fed_length = tf.placeholder(tf.int32, [batch])
    tokens = mtf.import_tf_tensor(
        mesh, tf.random.uniform(token_shape.to_integer_list, 0, 256, tf.int32, seed=0),
        token_shape)
    prompt_length = mtf.import_tf_tensor(mesh, fed_length,
                                         mtf.Shape([context.dims["batch"]]))
    samples = {incremental: sampling.sample(model, context, tokens, prompt_length, half,
                                            incremental=incremental)
               for incremental in (True, False)}
    lowering = mtf.Lowering(graph, {mesh: settings.layout.placement_impl()})
    fetches = {k: lowering.export_to_tf_tensor(v) for k, v in samples.items()}
    with initialized_session(settings, lowering) as session:

      def seconds(incremental, prompt):
        feed = {fed_length: np.full([batch], prompt, np.int32)}
        session.run(fetches[incremental], feed)
        best = float("inf")
        for _ in range(repeats):
          start = time.perf_counter()
          session.run(fetches[incremental], feed)
          best = min(best, time.perf_counter() - start)
        return best

      early, late = seconds(True, 1), seconds(True, half + 1)
      recompute = seconds(False, 1)
  return {"sample_bytes_per_sec": half / early,
          "sample_bytes_per_sec_recompute": half / recompute,
          "sample_byte_time_late_over_early": late / early}


DECODE_POSITIONS = (100, 1000)
DECODE_STRETCH = 512  # bytes timed at most per position


def decode_stretch(sequence_length, position, stretch=DECODE_STRETCH):
  """How to time the bytes at positions position + 1 .. position + n as `mtfzoo sample`
  makes them: (prompt bytes, bytes generated before them, n).

  The prompt fills the window up to `position` (all of it when position ≥ length), so
  output byte k lands at position prompt + k and the first `before` bytes end at
  `position`. n ≤ position keeps the stretch near `position`; inside the window it
  also stays inside it (the bytes decoded from the memories). Past the window every
  byte is what sample does there: decoding from the recurrent state
  (GPT.decodes_past_the_context), or recomputing the window.
  """
  prompt = min(position, sequence_length)
  before = position - prompt + 1
  n = min(stretch, position)
  if position < sequence_length - 1:
    n = min(n, sequence_length - 1 - position)
  return prompt, before, n


def decode_runs(settings, positions):
  """In the current tf.Graph: for each position P, the sampler (one row, from a fresh
  model and one fixed window of random bytes) making `before` and `before + n` bytes
  after its prompt (decode_stretch). Returns (lowering, {(P, bytes): the exported
  output}); its session must run lowering.copy_masters_to_slices() first."""
  graph = mtf.Graph()
  mesh = mtf.Mesh(graph, "mesh")
  model, context, token_shape = build_model(settings, mesh, "predict",
                                            settings.layout.split("batch"))
  tokens = mtf.import_tf_tensor(
      mesh, tf.random.uniform(token_shape.to_integer_list, 0, 256, tf.int32, seed=0),
      token_shape)
  runs = {}
  for position in positions:
    prompt, before, n = decode_stretch(settings.sequence_length, position)
    prompt_length = mtf.constant(mesh, prompt, mtf.Shape([context.dims["batch"]]),
                                 tf.int32)
    for num_bytes in (before, before + n):
      runs[position, num_bytes] = sampling.sample(model, context, tokens, prompt_length,
                                                  num_bytes)
  lowering = mtf.Lowering(graph, {mesh: settings.layout.placement_impl()})
  return lowering, {k: lowering.export_to_tf_tensor(v) for k, v in runs.items()}


def decode_speed(settings, positions=DECODE_POSITIONS, repeats=3, max_rounds=10):
  """{"decode_bytes_per_sec_at_P": bytes/s} for each P: the bytes at positions P + 1 ..
  P + n (decode_stretch) from sampling one row (as `mtfzoo sample` does) from a fresh
  model,

    n / (t(before + n bytes) − t(before bytes)),

  each t the best of at least `repeats` runs of the sampler from the same prompt
  (decode_runs), so prefill, the bytes before P and the session's fixed costs cancel.
  A position whose difference stays ≤ 0 after `max_rounds` (the machine's load swamped
  it) is NaN.
  """
  stretches = {p: decode_stretch(settings.sequence_length, p) for p in positions}
  with tf.Graph().as_default():
    lowering, fetches = decode_runs(settings, positions)
    with initialized_session(settings, lowering) as session:
      for fetch in fetches.values():  # the first run of each pays its set-up
        session.run(fetch)
      best = {key: float("inf") for key in fetches}
      # Rounds alternate the runs, so a change in the machine's load hits both runs of
      # a difference; a load spike that makes one longer than the other repeats a round.
      for round_ in range(max_rounds):
        for key, fetch in fetches.items():
          start = time.perf_counter()
          session.run(fetch)
          best[key] = min(best[key], time.perf_counter() - start)
        spans = {position: best[position, before + n] - best[position, before]
                 for position, (_, before, n) in stretches.items()}
        if round_ + 1 >= repeats and min(spans.values()) > 0:
          break
  return {"decode_bytes_per_sec_at_%d" % position: (
      stretches[position][2] / span if span > 0 else float("nan"))
          for position, span in spans.items()}


def decoding_state_bytes(settings):
  """Bytes that decoding one sequence carries from byte to byte: every layer's memories
  (keys and values, seq² map inputs: they grow with the context) or recurrent states
  (linear attention, retention: they do not), as a prefill records them."""
  batch = settings.layout.split("batch")
  with tf.Graph().as_default():
    mesh = mtf.Mesh(mtf.Graph(), "mesh")
    model, context, token_shape = build_model(settings, mesh, "predict", batch)
    context.start_prefill()
    model.logits(mtf.zeros(mesh, token_shape, tf.int32), context)
    return sum(m.shape.size * m.dtype.size for m in context.memories) // batch


def match_params(settings, target, multiple=8, tolerance=0.1):
  """Binds GPT.d_model to the multiple of `multiple` whose model has the parameter
  count nearest `target` (the count grows with d_model, so a bisection finds it).

  When even that count is off by more than `tolerance` (seq² maps with many heads can
  outweigh a whole Transformer), d_model stays as configured and stderr says so.
  """
  configured = GPT().d_model

  def params(d_model):
    with gin.unlock_config():
      gin.bind_parameter("GPT.d_model", d_model)
    try:
      return model_summary.summarize(settings).params
    except ValueError as e:
      raise UserError("--match_params: GPT.d_model = %d: %s" % (d_model, e))

  low, high = 1, 2
  while params(high * multiple) < target:
    low, high = high, high * 2
  while high - low > 1:  # params(low · multiple) < target <= params(high · multiple)
    middle = (low + high) // 2
    low, high = (middle, high) if params(middle * multiple) < target else (low, middle)
  best = min((low, high), key=lambda m: abs(params(m * multiple) - target))
  nearest = params(best * multiple)
  if abs(nearest - target) > tolerance * target:
    print("bench: no d_model gives about %s parameters (d_model=%d gives %s): "
          "keeping d_model=%d" % (f"{target:,}", best * multiple, f"{nearest:,}",
                                  configured), file=sys.stderr)
    params(configured)
  return settings


def train_step_time(settings, warmup=10, steps=50):
  """Median seconds per training step after `warmup` steps, in a scratch model_dir."""
  with tempfile.TemporaryDirectory() as model_dir:
    timed = dataclasses.replace(settings, train_steps=warmup + steps,
                                steps_per_checkpoint=10 ** 9)
    manifests = loop.shards(timed, model_dir, "train")
    timer = StepTimer(warmup)
    estimator = make_estimator(timed, model_dir, hooks=lambda tensors: [timer])
    estimator.train(loop.train_input_fn(timed, manifests, 0), max_steps=warmup + steps)
  return timer.step_time()


def bench(settings, warmup=10, steps=50, sampling_speeds=True):
  """One record of speed and memory. sampling_speeds=False leaves out the sampler's
  speeds (sampling_speed, decode_speed), whose recomputed windows cost most at long
  contexts."""
  matmul_flops = machine.matmul_flops(num_devices=settings.layout.num_devices)
  summary = model_summary.summarize(settings)
  step_time = train_step_time(settings, warmup, steps)
  threads = mesh_lib.thread_counts(settings.intra_op_threads, settings.inter_op_threads)
  flops_per_token = contraction_flops(settings, settings.batch_size)
  tokens_per_sec = settings.tokens_per_step / step_time
  return {
      "params": summary.params,
      "num_layers": summary.num_layers,
      "d_model": summary.d_model,
      "heads": summary.heads,
      "sequence_length": settings.sequence_length,
      "batch_size": settings.batch_size,
      "tokens_per_sec": tokens_per_sec,
      "step_time_s": step_time,
      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
      "optimizer_state_bytes": summary.optimizer_state_bytes,
      "activation_bytes": summary.activation_bytes,
      "kept_activation_bytes": summary.kept_activation_bytes,
      "largest_activations": [{"name": name, "shape": shape, "bytes": size}
                              for name, shape, size in summary.largest_activations],
      "seq_map_elements_per_layer": max((int(np.prod(s)) for _, s in summary.seq_maps),
                                        default=0),
      "attention_map_elements_per_layer": summary.attention_map_elements,
      "flops_per_token": flops_per_token,
      "machine_matmul_flops": matmul_flops,
      "machine": dict(machine.describe(measure_matmul=False), matmul_flops=matmul_flops),
      "mfu": tokens_per_sec * flops_per_token / matmul_flops,
      "intra_op_threads": threads[0],
      "inter_op_threads": threads[1],
      "decoding_state_bytes": decoding_state_bytes(settings),
      **(dict(**sampling_speed(settings), **decode_speed(settings))
         if sampling_speeds else {}),
  }


COLUMNS = [  # (header, format of a record r and the first record base)
    ("model", lambda r, base: r["model"]),
    ("d_model", lambda r, base: "%d" % r["d_model"]),
    ("params", lambda r, base: f"{r['params']:,}"),
    ("tokens/s", lambda r, base: "%.0f" % r["tokens_per_sec"]),
    ("× {base}", lambda r, base: "%.2f" % (r["tokens_per_sec"] / base["tokens_per_sec"])),
    ("training MFLOPs per token",
     lambda r, base: "%.2f" % (r["flops_per_token"] / 1e6)
     if "flops_per_token" in r else "–"),
    ("MFU", lambda r, base: "%.2f" % r["mfu"]),
    ("peak RSS (MB)", lambda r, base: "%.0f" % (r["peak_rss_bytes"] / 1e6)),
    ("× {base}", lambda r, base: "%.2f" % (r["peak_rss_bytes"] / base["peak_rss_bytes"])),
    ("activations (MB)", lambda r, base: "%.0f" % (r["activation_bytes"] / 1e6)),
    ("optimizer state (MB)", lambda r, base: "%.2f" % (r["optimizer_state_bytes"] / 1e6)),
    ("seq² map / attention map elements per layer", lambda r, base: "%s / %s" % (
        f"{r['seq_map_elements_per_layer']:,}",
        f"{r['attention_map_elements_per_layer']:,}")),
    ("sampling bytes/s: incremental / recompute", lambda r, base: "%.0f / %.0f" % (
        r["sample_bytes_per_sec"], r["sample_bytes_per_sec_recompute"])),
    ("late / early byte time",
     lambda r, base: "%.2f" % r["sample_byte_time_late_over_early"]),
    ("decoding state per sequence (KB)",
     lambda r, base: "%.1f" % (r["decoding_state_bytes"] / 1e3)
     if "decoding_state_bytes" in r else "–"),
    ("decoding bytes/s at position 100 / 1000", lambda r, base: " / ".join(
        "%.0f" % r[key] if key in r else "–"
        for key in ("decode_bytes_per_sec_at_100", "decode_bytes_per_sec_at_1000"))),
]


def markdown_table(records):
  """bench records (one per model, named by "model") -> a markdown table with ratios to
  the first record, and the optimizer-state ratio of each "M+sm3" record to "M"."""
  base = records[0]
  rows = ["| " + " | ".join(h.format(base=base["model"]) for h, _ in COLUMNS) + " |",
          "|---|" + "---:|" * (len(COLUMNS) - 1)]
  rows += ["| " + " | ".join(f(r, base) for _, f in COLUMNS) + " |" for r in records]
  by_name = {r["model"]: r for r in records}
  for name, r in by_name.items():
    adam = by_name.get(name[:-len("+sm3")]) if name.endswith("+sm3") else None
    if adam:
      rows.append("\nOptimizer state, %s / %s: %.2f" % (
          name, adam["model"], r["optimizer_state_bytes"] / adam["optimizer_state_bytes"]))
  return "\n".join(rows)


if __name__ == "__main__":
  with open(sys.argv[1]) as f:
    print(markdown_table([json.loads(line) for line in f if line.strip()]))
