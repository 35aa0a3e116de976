import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from data import CorpusError, corpus_bytes, read_manifest, split, write_shards
from tests.cli_testing import REPO


def write_corpus(path, text):
  path.write_bytes(text)
  return str(path)


def records(manifest):
  """Every window of every shard, cut from the raw bytes by their fixed length."""
  length = manifest["sequence_length"] + 1
  out = []
  for shard in manifest["shards"]:
    with open(os.path.join(manifest["dir"], shard["file"]), "rb") as f:
      raw = f.read()
    out += [raw[i:i + length] for i in range(0, len(raw), length)]
  return out


def names(manifest):
  return [s["file"] for s in manifest["shards"]]


def test_shards_hold_every_window_of_the_split_with_stride_sequence_length(tmp_path):
  data = bytes(range(256)) * 2
  corpus = write_corpus(tmp_path / "c.bin", data)
  m = write_shards(corpus, "train", 10, str(tmp_path / "d"), records_per_shard=7)
  train = split(data, "train")
  windows = [train[i * 10:i * 10 + 11] for i in range((len(train) - 1) // 10)]
  assert records(m) == windows and m["windows"] == len(windows) == 45
  assert len(m["shards"]) == 7  # ceil(45 / 7)
  assert m["bytes"] == len(train) and m["source"] == corpus and m["split"] == "train"
  assert m["dir"] == os.path.join(str(tmp_path / "d"), os.path.basename(m["dir"]))
  folder = os.path.basename(m["dir"])
  assert folder.startswith("c.bin-") and folder.endswith("-train-L10")


def test_manifest_on_disk_is_the_returned_one_and_no_temporary_files_remain(tmp_path):
  corpus = write_corpus(tmp_path / "c.txt", b"x" * 500)
  m = write_shards(corpus, "eval", 8, str(tmp_path / "d"))
  with open(os.path.join(m["dir"], "manifest.json")) as f:
    assert dict(json.load(f), dir=m["dir"]) == m == read_manifest(m["dir"])
  assert sorted(os.listdir(m["dir"])) == sorted(names(m) + ["manifest.json"])


def test_second_write_reuses_the_shards_without_rewriting_them(tmp_path):
  corpus = write_corpus(tmp_path / "c.txt", b"To be, or not to be. " * 40)
  first = write_shards(corpus, "train", 16, str(tmp_path / "d"), records_per_shard=10)
  paths = [os.path.join(first["dir"], f) for f in names(first) + ["manifest.json"]]
  for p in paths:  # an old mtime: a rewrite would show even within the clock's tick
    os.utime(p, ns=(1, 1))
  second = write_shards(corpus, "train", 16, str(tmp_path / "d"), records_per_shard=10)
  assert second == first and len(first["shards"]) > 1
  assert [os.stat(p).st_mtime_ns for p in paths] == [1] * len(paths)


def test_a_changed_corpus_rewrites_the_shards_and_drops_stale_ones(tmp_path):
  path = tmp_path / "c.txt"
  first = write_shards(write_corpus(path, b"a" * 400), "train", 8, str(tmp_path / "d"),
                       records_per_shard=10)
  second = write_shards(write_corpus(path, b"b" * 200), "train", 8, str(tmp_path / "d"),
                        records_per_shard=10)
  assert second["dir"] == first["dir"] and second["fingerprint"] != first["fingerprint"]
  assert len(second["shards"]) < len(first["shards"])
  assert records(second) == [b"b" * 9] * second["windows"]
  assert sorted(os.listdir(second["dir"])) == sorted(names(second) + ["manifest.json"])


def test_split_too_short_for_a_window_names_corpus_split_and_sequence_length(tmp_path):
  corpus = write_corpus(tmp_path / "short.txt", b"x" * 100)  # eval split: 10 bytes
  with pytest.raises(CorpusError) as e:
    write_shards(corpus, "eval", 10, str(tmp_path / "d"))
  message = str(e.value)
  assert corpus in message and "eval" in message and "sequence_length + 1 = 11" in message
  # Ten bytes are exactly one window of sequence_length 9.
  assert write_shards(corpus, "eval", 9, str(tmp_path / "d"))["windows"] == 1


def test_missing_corpus_raises_corpus_error_naming_the_path(tmp_path):
  with pytest.raises(CorpusError, match="no.txt"):
    write_shards(str(tmp_path / "no.txt"), "train", 8, str(tmp_path / "d"))


def write_tree(root, texts):
  for path, text in texts.items():
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(text)
  return str(root)


def test_a_directory_is_streamed_into_the_windows_of_its_joined_bytes(tmp_path):
  # Many small shards: their byte ranges start inside files and inside separators.
  texts = {"a.txt": b"alpha " * 31, "b/c.txt": b"", "b/d.txt": b"delta\n" * 17,
           "e.txt": bytes(range(256))}
  corpus = write_tree(tmp_path / "corpus", texts)
  joined = corpus_bytes(corpus)
  for name in ("train", "eval"):
    m = write_shards(corpus, name, 5, str(tmp_path / "d"), records_per_shard=3)
    part = split(joined, name)
    assert records(m) == [part[i * 5:i * 5 + 6] for i in range((len(part) - 1) // 5)]


def test_two_workers_write_the_same_shards_as_one(tmp_path):
  corpus = write_tree(tmp_path / "corpus", {"%d.txt" % i: os.urandom(900)
                                            for i in range(5)})
  one = write_shards(corpus, "train", 7, str(tmp_path / "one"), records_per_shard=50)
  two = write_shards(corpus, "train", 7, str(tmp_path / "two"), records_per_shard=50,
                     workers=2)
  assert len(one["shards"]) == 12 and one["shards"] == two["shards"]
  assert records(one) == records(two)


def test_manifest_records_each_shards_windows_bytes_and_sha256(tmp_path):
  corpus = write_corpus(tmp_path / "c.bin", os.urandom(3000))
  m = write_shards(corpus, "train", 12, str(tmp_path / "d"), records_per_shard=40)
  assert [s["windows"] for s in m["shards"]] == [40, 40, 40, 40, 40, 24]
  for shard in m["shards"]:
    with open(os.path.join(m["dir"], shard["file"]), "rb") as f:
      content = f.read()
    assert shard["bytes"] == len(content) == shard["windows"] * 13
    assert shard["sha256"] == hashlib.sha256(content).hexdigest()


def test_a_file_that_cannot_be_read_inside_a_directory_is_named(tmp_path):
  corpus = write_tree(tmp_path / "corpus", {"a.txt": b"x" * 100})
  os.symlink(str(tmp_path / "gone.txt"), os.path.join(corpus, "b.txt"))
  with pytest.raises(CorpusError) as e:
    write_shards(corpus, "train", 8, str(tmp_path / "d"))
  assert "b.txt" in str(e.value) and "\n" not in str(e.value)
  assert not os.path.exists(tmp_path / "d")


def test_a_data_dir_with_shards_of_another_sequence_length_only_is_refused(tmp_path):
  corpus = write_corpus(tmp_path / "c.txt", b"y" * 600)
  write_shards(corpus, "train", 16, str(tmp_path / "d"))
  with pytest.raises(CorpusError, match="sequence_length 16, not 8"):
    write_shards(corpus, "train", 8, str(tmp_path / "d"))
  # Asked for explicitly (mtfzoo prepare), another length is added beside it.
  assert write_shards(corpus, "train", 8, str(tmp_path / "d"),
                      other_lengths_ok=True)["sequence_length"] == 8
  assert write_shards(corpus, "train", 8, str(tmp_path / "d"))["sequence_length"] == 8


# Writes shards of a large corpus one small shard at a time, so it can be killed
# part-way: argv = corpus, data_dir.
PREPARE_DRIVER = """
import sys
from data import write_shards
write_shards(sys.argv[1], "train", 63, sys.argv[2], records_per_shard=2000)
"""


def shard_files(directory):
  """{name: (inode, mtime_ns)} of the finished shards in a folder."""
  return {n: (os.stat(os.path.join(directory, n)).st_ino,
              os.stat(os.path.join(directory, n)).st_mtime_ns)
          for n in os.listdir(directory) if n.endswith(".bin")}


def test_a_killed_preparation_leaves_no_manifest_and_resumes_keeping_its_shards(
    tmp_path):
  corpus = write_corpus(tmp_path / "big.bin", np.random.RandomState(0).bytes(40 << 20))
  data_dir = str(tmp_path / "d")
  process = subprocess.Popen([sys.executable, "-c", PREPARE_DRIVER, corpus, data_dir],
                             cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 120
    folder = None
    while process.poll() is None and time.time() < deadline:
      found = [os.path.join(data_dir, n) for n in os.listdir(data_dir)] if os.path.isdir(
          data_dir) else []
      if found and len(shard_files(found[0])) >= 3:
        folder = found[0]
        break
      time.sleep(0.005)
    assert process.poll() is None, "preparation ended before it could be killed"
    process.send_signal(signal.SIGKILL)
  finally:
    process.kill()
    process.wait()
  assert not os.path.exists(os.path.join(folder, "manifest.json"))
  kept = shard_files(folder)
  total = -(-((int((40 << 20) * 0.9) - 1) // 63) // 2000)
  assert 3 <= len(kept) < total

  m = write_shards(corpus, "train", 63, data_dir, records_per_shard=2000)
  assert len(m["shards"]) == total
  assert {n: v for n, v in shard_files(folder).items() if n in kept} == kept
  reference = write_shards(corpus, "train", 63, str(tmp_path / "reference"),
                           records_per_shard=2000)
  assert m["shards"] == reference["shards"]
  assert sorted(os.listdir(folder)) == sorted(names(m) + ["manifest.json"])
