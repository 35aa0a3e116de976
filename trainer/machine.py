"""The machine a run or a benchmark ran on: CPU model, vector ISA, cores and matmul
speed. CPU minutes are only comparable between runs of one machine, and one CPU model
name is not enough to tell: two virtual machines sold as the same 2-core AMD EPYC
measured 160 and 265 GFLOP/s. run.json records this and `compare` shows it beside each
run's CPU time."""
import functools
import os
import platform
import time

from mtf_compat import tf
from trainer import mesh as mesh_lib

CPUINFO = "/proc/cpuinfo"
# The widest vector extension first: its /proc/cpuinfo flag and the name to report.
VECTOR_ISAS = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"),
               ("sse4_2", "SSE4.2"), ("sve", "SVE"), ("asimd", "NEON"))


def cpuinfo_fields(text, keys):
  """The values of the `key : value` lines of /proc/cpuinfo text whose key is in keys."""
  values = []
  for line in text.splitlines():
    key, separator, value = line.partition(":")
    if separator and key.strip() in keys:
      values.append(value.strip())
  return values


def cpu_model(cpuinfo_text):
  """'AMD EPYC 7B13' from x86's "model name"; on ARM, whatever names the CPU."""
  names = cpuinfo_fields(cpuinfo_text, ("model name", "Model", "Processor"))
  return names[0] if names else (platform.processor() or platform.machine())


def vector_isa(cpuinfo_text):
  """The widest vector extension the CPU's flags name ('AVX-512', 'AVX2', 'NEON'...),
  or None when the flags name none of them."""
  flags = set()
  for line in cpuinfo_fields(cpuinfo_text, ("flags", "Features")):
    flags.update(line.split())
  return next((name for flag, name in VECTOR_ISAS if flag in flags), None)


def matmul_flops(n=1024, repeats=10, num_devices=1):
  """The best FLOP/s of an n x n f32 matmul chain on this machine, now."""
  with tf.Graph().as_default():
    a = tf.random.normal([n, n], seed=0)
    b = tf.random.normal([n, n], seed=1)
    product = a
    for _ in range(4):
      product = tf.matmul(product, b) * (1.0 / n)
    checksum = tf.reduce_sum(product)
    with tf.Session(config=mesh_lib.session_config(num_devices)) as session:
      session.run(checksum)
      best = float("inf")
      for _ in range(repeats):
        start = time.perf_counter()
        session.run(checksum)
        best = min(best, time.perf_counter() - start)
  return 4 * 2 * n ** 3 / best


def describe(measure_matmul=True):
  """{'cpu', 'isa', 'cores', 'matmul_flops'} of this host. Three repeats of the matmul
  chain (a quarter of a second) tell the machines apart; `mtfzoo bench` takes ten. Another
  job on the cores at that moment lowers the figure, as it slows the run. Measured once
  per process: commands run in one process (as the tests run them) share the figure."""
  return dict(_describe(measure_matmul))


@functools.lru_cache(maxsize=None)
def _describe(measure_matmul):
  try:
    with open(CPUINFO) as f:
      text = f.read()
  except OSError:  # not Linux
    text = ""
  return {"cpu": cpu_model(text), "isa": vector_isa(text), "cores": os.cpu_count(),
          "matmul_flops": matmul_flops(repeats=3) if measure_matmul else None}
