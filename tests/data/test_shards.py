import json
import os

import pytest

from data import CorpusError, read_manifest, split, write_shards


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
