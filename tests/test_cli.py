"""Every mistake a user can make ends in one line on stderr, exit status 2, and an
unchanged model_dir."""
import os

import pytest

from tests import cli_testing as cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A model_dir with a checkpoint, and the corpus it was trained on."""
  base = tmp_path_factory.mktemp("trained")
  corpus = cli.write_corpus(base / "corpus.txt")
  cli.train(base / "run", "run.corpus = '%s'" % corpus, "run.train_steps = 2")
  return base / "run", corpus


def bad_gin(tmp_path, text):
  path = tmp_path / "bad.gin"
  path.write_text(text)
  return ["train", "--gin_file", path]


def new_model_dir(tmp_path):
  return ["--model_dir", tmp_path / "new"]


CASES = {
    # name: (args builder(tmp_path, trained_dir, corpus) -> argv, text the line names)
    "missing gin file": (lambda t, d, c: ["train", "--gin_file", t / "nope.gin"]
                         + new_model_dir(t), "nope.gin"),
    "gin syntax error": (lambda t, d, c: bad_gin(t, "GPT.num_layers = = 2\n")
                         + new_model_dir(t), "gin"),
    "unknown binding": (lambda t, d, c: ["train", "--gin_file",
                                         "gin/models/transformer.gin",
                                         "--gin_param", "run.trian_steps = 3"]
                        + new_model_dir(t), "trian_steps"),
    "unknown model": (lambda t, d, c: bad_gin(t, "GPT.token_mixer = @Transfomer\n")
                      + new_model_dir(t), "Transfomer"),
    "missing corpus": (lambda t, d, c: ["train", "--gin_file",
                                        "gin/models/transformer.gin", "--gin_param",
                                        "run.corpus = '%s'" % (t / "no.txt")]
                       + new_model_dir(t), "no.txt"),
    "empty corpus": (lambda t, d, c: ["train", "--gin_file",
                                      "gin/models/transformer.gin", "--gin_param",
                                      "run.corpus = '%s'" % empty(t)]
                     + new_model_dir(t), "empty.txt"),
    "mixture weight of zero": (
        lambda t, d, c: ["train", "--gin_file", "gin/models/transformer.gin",
                         "--gin_param", "run.corpus = {'shakespeare': 1, '%s': 0}" % c]
        + new_model_dir(t), "must be a number > 0"),
    "mixture naming one corpus twice": (
        lambda t, d, c: ["train", "--gin_file", "gin/models/transformer.gin",
                         "--gin_param", "run.corpus = {'%s': 1, '%s/./%s': 2}"
                         % (c, os.path.dirname(c), os.path.basename(c))]
        + new_model_dir(t), "names one corpus twice"),
    "unreadable file in a directory corpus": (
        lambda t, d, c: ["train", "--gin_file", "gin/models/transformer.gin",
                         "--gin_param", "run.corpus = '%s'" % dangling(t, c)]
        + new_model_dir(t), "broken.txt"),
    "data_dir of another sequence_length": (
        lambda t, d, c: ["train", "--gin_file", "gin/models/transformer.gin"]
        + cli.gin_params("run.corpus = '%s'" % c,
                         "run.data_dir = '%s'" % prepared(t, c, 8))
        + new_model_dir(t), "sequence_length 8, not 16"),
    "short convolution of one tap": (
        lambda t, d, c: ["train", "--gin_file", "gin/models/transformer.gin",
                         "--gin_param", "GPT.short_conv = 1"]
        + new_model_dir(t), "GPT.short_conv"),
    "layout that does not divide": (
        lambda t, d, c: ["train", "--gin_file", "gin/models/transformer.gin",
                         "--gin_param", "run.mesh_shape = 'model:3'",
                         "--gin_param", "run.layout_rules = 'heads:model'"]
        + new_model_dir(t), "heads"),
    "layout naming a missing mesh axis": (
        lambda t, d, c: ["train", "--gin_file", "gin/models/transformer.gin",
                         "--gin_param", "run.mesh_shape = 'data:2'",
                         "--gin_param", "run.layout_rules = 'batch:model'"]
        + new_model_dir(t), "model"),
    "checkpoint of another model": (
        lambda t, d, c: ["train", "--model_dir", d, "--gin_file",
                         "gin/models/transformer.gin", "--gin_param",
                         "run.corpus = '%s'" % c, "--gin_param", "GPT.d_model = 48"],
        "different model"),
    "eval without checkpoint": (lambda t, d, c: ["eval"] + new_model_dir(t),
                                "config.gin"),
    "sample with negative temperature": (
        lambda t, d, c: ["sample", "--model_dir", d, "--temperature", "-1"],
        "temperature"),
    "bench with no timed steps": (
        lambda t, d, c: ["bench", "--gin_file", "gin/models/transformer.gin",
                         "--bench_steps", "0"], "--bench_steps"),
    "sample with negative top_k": (
        lambda t, d, c: ["sample", "--model_dir", d, "--top_k", "-2"], "top_k"),
    "sample with zero length": (
        lambda t, d, c: ["sample", "--model_dir", d, "--length", "0"], "length"),
    "score of empty text": (lambda t, d, c: ["score", "--model_dir", d, "--text", ""],
                            "text"),
    "export into a non-empty directory": (
        lambda t, d, c: ["export", "--model_dir", d, "--export_dir", nonempty(t)],
        "not empty"),
    "unknown flag": (lambda t, d, c: ["train", "--gin_fil", "x"], "gin_fil"),
    "synthetic with an unknown task": (
        lambda t, d, c: ["synthetic", "--task", "recal", "--gin_file",
                         "gin/models/transformer.gin"] + new_model_dir(t), "recal"),
    "synthetic with more pairs than the context holds": (
        lambda t, d, c: ["synthetic", "--task", "mqar", "--num_pairs", "33",
                         "--gin_file", "gin/models/transformer.gin"]
        + new_model_dir(t), "--num_pairs 33"),
    "eval of a test split the corpus lacks": (
        lambda t, d, c: ["eval", "--model_dir", d, "--split", "test"], "no test split"),
    "enwik8 of the wrong size": (
        lambda t, d, c: enwik8(t, c, 10 ** 6), "1,000,000 bytes"),
    "enwik8 with the wrong MD5": (lambda t, d, c: enwik8(t, c, 10 ** 8), "MD5"),
}


def enwik8(tmp_path, corpus, size):
  """train on a stand-in enwik8 file of `size` bytes (sparse: written instantly)."""
  path = tmp_path / "enwik8"
  with open(path, "wb") as f:
    f.truncate(size)
  return ["train", "--gin_file", "gin/models/transformer.gin", "--gin_param",
          "run.corpus = 'enwik8:%s'" % path] + new_model_dir(tmp_path)


def empty(tmp_path):
  path = tmp_path / "empty.txt"
  path.write_bytes(b"")
  return path


def dangling(tmp_path, corpus):
  """A directory corpus holding a link to a file that does not exist."""
  root = tmp_path / "corpus_dir"
  root.mkdir()
  (root / "good.txt").write_bytes(open(corpus, "rb").read())
  os.symlink(str(tmp_path / "missing.txt"), str(root / "broken.txt"))
  return root


def prepared(tmp_path, corpus, sequence_length):
  """A data_dir with the corpus prepared for another sequence length."""
  cli.mtfzoo("prepare", "--corpus", corpus, "--data_dir", tmp_path / "data",
             "--sequence_length", sequence_length)
  return tmp_path / "data"


def nonempty(tmp_path):
  path = tmp_path / "full"
  path.mkdir()
  (path / "keep.txt").write_text("mine")
  return path


@pytest.fixture(scope="module")
def mistakes(trained, tmp_path_factory):
  """Every case of CASES in one process, each in a directory of its own:
  ({case: (its directory, its result)}, the trained model_dir's digest before and after
  them all)."""
  run_dir, corpus = trained
  cases = sorted(CASES)
  directories = [tmp_path_factory.mktemp("case") for _ in cases]
  argvs = [CASES[case][0](t, run_dir, corpus) for case, t in zip(cases, directories)]
  before = cli.tree_digest(run_dir)
  results = cli.mtfzoo_many(argvs, tmp_path_factory.mktemp("mistakes") / "results.json")
  return dict(zip(cases, zip(directories, results))), (before, cli.tree_digest(run_dir))


def assert_one_line_exit_2(code, stderr, named):
  lines = [l for l in stderr.splitlines() if l.strip()]
  assert code == 2, stderr[-2000:]
  assert len(lines) == 1, stderr[-2000:]
  assert named in lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_mistake_is_one_line_exit_2_and_changes_nothing(case, mistakes):
  results, (before, after) = mistakes
  directory, result = results[case]
  assert_one_line_exit_2(result["code"], result["stderr"], CASES[case][1])
  assert after == before
  assert not os.path.exists(directory / "new")


def test_a_mistake_in_a_fresh_process_is_one_line_too(tmp_path):
  """As a user meets it: the CLI's own process, TensorFlow imported in it."""
  build, named = CASES["unknown binding"]
  result = cli.mtfzoo(*build(tmp_path, None, None), check=False)
  assert_one_line_exit_2(result.returncode, result.stderr, named)
  assert not os.path.exists(tmp_path / "new")
