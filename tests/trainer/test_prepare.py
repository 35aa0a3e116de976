"""mtfzoo prepare, and training on what it prepared or on a mixture of corpora."""
import os

from tests import cli_testing as cli


def shard_times(data_dir):
  """{path: mtime_ns} of every file below data_dir."""
  return {os.path.join(root, n): os.stat(os.path.join(root, n)).st_mtime_ns
          for root, _, names in os.walk(data_dir) for n in names}


def test_train_reads_the_shards_prepare_wrote_without_rewriting_them(tmp_path):
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  out = cli.mtfzoo("prepare", "--corpus", corpus, "--data_dir", tmp_path / "data",
                   "--sequence_length", 16, "--workers", 2).stdout
  lines = out.splitlines()
  assert lines[0].startswith("train: ") and lines[1].startswith("eval: ")
  before = shard_times(tmp_path / "data")
  assert len(before) == 4  # a shard and a manifest per split
  cli.train(tmp_path / "run", "run.corpus = '%s'" % corpus, "run.train_steps = 2",
            "run.data_dir = '%s'" % (tmp_path / "data"))
  assert shard_times(tmp_path / "data") == before
  assert not os.path.exists(tmp_path / "run" / "data")


def test_a_mixture_reports_each_corpus_held_out_bpc_and_their_weighted_mean(tmp_path):
  english = cli.write_corpus(tmp_path / "english.txt")
  digits = tmp_path / "digits.txt"
  digits.write_text("0123456789 " * 400)
  run = tmp_path / "run"
  mixture = "{'%s': 1, '%s': 3}" % (english, digits)
  cli.train(run, "run.corpus = %s" % mixture, "run.train_steps = 3")
  [record] = cli.metrics(run, "eval_metrics.jsonl")
  by_corpus = record["eval_bpc_by_corpus"]
  assert sorted(by_corpus) == sorted([english, str(digits)])
  assert by_corpus[english] != by_corpus[str(digits)]
  assert abs(record["eval_bpc"] - (by_corpus[english] + 3 * by_corpus[str(digits)]) / 4
             ) < 1e-9
  # mtfzoo eval (over the whole held-out splits) prints the mean, then each corpus.
  lines = cli.mtfzoo("eval", "--model_dir", run).stdout.splitlines()
  values = {line.rsplit(":", 1)[0]: float(line.rsplit(":", 1)[1]) for line in lines}
  assert sorted(values) == sorted(["bpc", "bpc %s" % english, "bpc %s" % digits])
  mean = (values["bpc %s" % english] + 3 * values["bpc %s" % digits]) / 4
  assert abs(values["bpc"] - mean) < 2e-4  # each printed to 4 decimals
