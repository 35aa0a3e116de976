"""mtfzoo bench --prepare: what preparing a large corpus costs, and whether the input
pipeline keeps up with training.

Preparation: corpora of seeded random words (PREPARE_SIZES bytes, written here and
deleted after) are prepared with 1 and 2 workers, each in a fresh process that
imports the data layer without TensorFlow: throughput in corpus MB/s of wall time,
and the peak RSS of that process and of its worker processes. Memory must not grow
with the corpus. Input: batches/s that the training input_fn delivers from the
shards of the first corpus, against the training step rate of the config given.
"""
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from mtf_compat import tf
from trainer import loop
from reports import bench

PREPARE_SIZES = (500 * 10 ** 6, 2000 * 10 ** 6)
WORKERS = (1, 2)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One preparation in a process of its own: argv = corpus, data_dir, sequence_length,
# workers; prints {"seconds", "peak_rss_bytes", "workers_peak_rss_bytes"}. Its own
# peak is VmHWM: getrusage would report the larger peak of the process it was forked
# from (Linux keeps ru_maxrss across exec).
PREPARE_DRIVER = """
import json, resource, sys, time
from data import shards
corpus, data_dir, length, workers = sys.argv[1:]
start = time.perf_counter()
for split in ("train", "eval"):
  shards.write_shards(corpus, split, int(length), data_dir, workers=int(workers))
seconds = time.perf_counter() - start
with open("/proc/self/status") as f:
  peak = [int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:")][0]
print(json.dumps({"seconds": seconds, "peak_rss_bytes": peak,
                  "workers_peak_rss_bytes":
                      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""


def random_words(path, size, seed=0, block=16 << 20):
  """`size` bytes of seeded random words: a pool of 2·block bytes of words drawn from
  a vocabulary of 4096 lowercase words (2-10 letters, each followed by a space or, one
  word in 13, a newline), then blocks cut from the pool at random offsets (drawing
  every word afresh would take minutes for 2 GB)."""
  random = np.random.RandomState(seed)
  vocabulary = [bytes(random.randint(ord("a"), ord("z") + 1, random.randint(2, 11))
                      .astype(np.uint8)) + (b"\n" if i % 13 == 0 else b" ")
                for i in range(4096)]
  pool = b"".join([vocabulary[i] for i in random.randint(0, 4096, 2 * block // 6)])
  written = 0
  with open(path, "wb") as f:
    while written < size:
      start = random.randint(0, len(pool) - block)
      text = pool[start:start + min(block, size - written)]
      f.write(text)
      written += len(text)
def prepare_once(corpus, data_dir, sequence_length, workers):
  result = subprocess.run([sys.executable, "-c", PREPARE_DRIVER, corpus, data_dir,
                           str(sequence_length), str(workers)], cwd=REPO,
                          capture_output=True, text=True, check=True)
  return json.loads(result.stdout.strip().splitlines()[-1])


def input_batches_per_sec(settings, corpus, data_dir, warmup=20, batches=400):
  """Batches/s the training input_fn delivers from the corpus's shards in data_dir (a
  session pulling batches, no model)."""
  settings = dataclasses.replace(settings, corpus=corpus, data_dir=data_dir)
  input_fn = loop.train_input_fn(settings, loop.shards(settings, None, "train"), 0)
  with tf.Graph().as_default():
    next_batch = tf.data.make_one_shot_iterator(
        input_fn({"batch_size": settings.batch_size})).get_next()
    with tf.Session() as session:
      for _ in range(warmup):
        session.run(next_batch)
      start = time.perf_counter()
      for _ in range(batches):
        session.run(next_batch)
      return batches / (time.perf_counter() - start)


def bench_data(settings, sizes=PREPARE_SIZES, workers=WORKERS):
  """{'prepare': [{corpus_bytes, workers, mb_per_sec, ...}], 'input': {...}}."""
  records = []
  scratch = tempfile.mkdtemp(prefix="mtfzoo-bench-data-")
  try:
    for size in sizes:
      corpus = os.path.join(scratch, "words-%d.txt" % size)
      random_words(corpus, size)
      for count in workers:
        data_dir = os.path.join(scratch, "data-%d" % count)
        result = prepare_once(corpus, data_dir, settings.sequence_length, count)
        records.append(dict(result, corpus_bytes=size, workers=count,
                            mb_per_sec=size / result["seconds"] / 1e6))
        if size != sizes[0] or count != workers[-1]:
          shutil.rmtree(data_dir)
      if size == sizes[0]:
        batches_per_sec = input_batches_per_sec(settings, corpus, data_dir)
        shutil.rmtree(data_dir)
      os.remove(corpus)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  step_time = bench.train_step_time(settings)
  by = {(r["corpus_bytes"], r["workers"]): r for r in records}
  rss = [max(r["peak_rss_bytes"], r["workers_peak_rss_bytes"]) for r in records]
  return {
      "prepare": records,
      "speedup_2_workers": [by[(s, 2)]["mb_per_sec"] / by[(s, 1)]["mb_per_sec"]
                            for s in sizes if (s, 1) in by and (s, 2) in by],
      "peak_rss_ratio_largest_smallest": (
          max(rss[-len(workers):]) / max(rss[:len(workers)])),
      "input_windows_per_sec": batches_per_sec * settings.batch_size,
      "train_windows_per_sec": settings.batch_size / step_time,
      "train_tokens_per_sec": settings.tokens_per_step / step_time,
      "input_over_train": batches_per_sec * step_time,
      "sequence_length": settings.sequence_length,
      "batch_size": settings.batch_size,
  }
