"""mtfzoo baselines: compressors given the training split, the Kneser-Ney byte n-gram
against a direct implementation of its formula and against a known entropy rate, and
the baselines in compare's table and plots."""
import collections
import json
import zlib

import gin
import numpy as np
import pytest

from reports import baselines
from reports import compare
from tests import cli_testing as cli
from trainer import config


def random_bytes(n, seed=0, alphabet=256):
  return np.random.default_rng(seed).integers(0, alphabet, n).astype(np.uint8).tobytes()


@pytest.mark.parametrize("name", sorted(baselines.COMPRESSORS))
def test_a_held_out_text_that_repeats_the_training_text_costs_little_given_it(name):
  text = random_bytes(20000)  # incompressible alone: about 8 bits per byte
  alone, conditioned = baselines.compressor_bpc(name, text * 9, text)
  assert alone > 7.5
  assert conditioned < 0.1 * alone, (alone, conditioned)


# --- Kneser-Ney -------------------------------------------------------------------


def reference_kneser_ney(text, order):
  """P(w | h) for the order-n model, straight from Chen & Goodman's interpolated
  modified Kneser-Ney (1998, §3.5) with dictionaries: raw counts at the top order,
  continuation counts N1+(·g) below, D_r = r − (r+1)·Y·n_{r+1}/n_r clipped to
  [0.1, r − 0.1] (n_{r+1}/n_r = 0 if n_r = 0, Y = ½ if n1 = n2 = 0), uniform 1/256
  under order 1."""
  raw, left = [None], [None]
  for k in range(1, order + 1):
    grams = [text[i:i + k] for i in range(len(text) - k + 1)]
    raw.append(collections.Counter(grams))
    left.append(collections.defaultdict(set))
    for i in range(1, len(text) - k + 1):
      left[k][text[i:i + k]].add(text[i - 1])

  tables = {k: raw[k] if k == order else {g: len(s) for g, s in left[k].items()}
            for k in range(1, order + 1)}

  def counts(k):
    return tables[k]

  def discounts(k):
    n = collections.Counter(counts(k).values())
    y = n[1] / (n[1] + 2 * n[2]) if n[1] + n[2] else 0.5
    return [0.0] + [min(max(r - (r + 1) * y * (n[r + 1] / n[r] if n[r] else 0), 0.1),
                        r - 0.1) for r in (1, 2, 3)]

  def prob(k, context, w):
    if k == 0:
      return 1 / 256
    lower = prob(k - 1, context[1:], w)
    c = counts(k)
    following = {g[-1]: n for g, n in c.items() if g[:-1] == context and n > 0}
    total = sum(following.values())
    if total == 0:
      return lower
    d = discounts(k)
    gamma = sum(d[min(n, 3)] for n in following.values()) / total
    n = following.get(w, 0)
    return (n - d[min(n, 3)]) / total + gamma * lower

  def distribution(context):
    context = context[len(context) - min(len(context), order - 1):]
    return np.array([prob(len(context) + 1, context, w) for w in range(256)])

  return distribution


TEXT = (b"she sells sea shells by the sea shore; the shells she sells are sea shells, "
        b"surely. " * 3 + b"abracadabra, cabbage and a bad cab. " * 2 + b"zebra")


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_equals_a_direct_implementation_of_its_formula(order):
  model = baselines.KneserNeyBytes(max_order=order).fit(TEXT)
  reference = reference_kneser_ney(TEXT, order)
  for context in (b"", b"s", b"the sh", b"sea s", b"ab", b"zeb", b"qz", b"ze\xff"):
    np.testing.assert_allclose(model.distribution(context, order), reference(context),
                               rtol=1e-12, atol=1e-15, err_msg=repr(context))


@pytest.mark.parametrize("order", [1, 2, 3, 5, 8])
def test_kneser_ney_probabilities_sum_to_1_over_the_256_bytes_at_any_context(order):
  text = TEXT + random_bytes(3000, seed=1, alphabet=40)
  model = baselines.KneserNeyBytes(max_order=8).fit(text)
  # Empty, seen, seen only at the very start or end, partly seen, never-seen bytes.
  for context in (b"", b"s", b"she sells", TEXT[:7], b"zebra", b"sea q", b"\xfe\xff",
                  bytes(range(200, 210)), text[-12:]):
    p = model.distribution(context, order)
    assert p.shape == (256,)
    assert np.all(p > 0), context
    assert abs(p.sum() - 1.0) < 1e-12, (context, p.sum())


def test_ngram_bpc_approaches_the_entropy_rate_of_an_order_1_markov_chain():
  rng = np.random.default_rng(0)
  symbols = 8
  transition = rng.dirichlet(np.full(symbols, 0.5), size=symbols)
  # Stationary distribution: the left eigenvector of eigenvalue 1.
  values, vectors = np.linalg.eig(transition.T)
  stationary = np.real(vectors[:, np.argmin(np.abs(values - 1))])
  stationary /= stationary.sum()
  rate = -np.sum(stationary[:, None] * transition
                 * np.log2(np.where(transition > 0, transition, 1)))
  unigram = -np.sum(stationary * np.log2(stationary))
  assert unigram - rate > 0.4  # the chain's context is worth knowing

  n = 300000
  states = np.empty(n, np.int64)
  states[0] = 0
  cumulative = np.cumsum(transition, axis=1)
  draws = rng.random(n)
  for t in range(1, n):
    states[t] = min(np.searchsorted(cumulative[states[t - 1]], draws[t]), symbols - 1)
  text = (states + ord("a")).astype(np.uint8).tobytes()
  train, heldout = text[:int(0.9 * n)], text[int(0.9 * n):]
  result = baselines.ngram_baseline(train, heldout)
  # 30,000 held-out bytes: the sampling error of a mean of -log2 p is about 0.01.
  assert abs(result["ngram"] - rate) < 0.03, (result, rate)


# --- compare ----------------------------------------------------------------------


def fake_run(path, corpus, final_bpc, params=1000):
  """A run directory as training leaves it, minus checkpoints (as docs/runs/ keeps)."""
  path.mkdir(parents=True)
  with open(path / "metrics.jsonl", "w") as f:
    for step in range(1, 11):
      f.write(json.dumps({"step": step, "loss": 2.0, "bpc": 8.0 - step * 0.5,
                          "tokens_per_sec": 1000.0, "wall_time": 100.0 + step,
                          "peak_rss_bytes": 1e8}) + "\n")
  with open(path / "eval_metrics.jsonl", "w") as f:
    for step, bpc in ((5, final_bpc + 1.0), (10, final_bpc)):
      f.write(json.dumps({"step": step, "eval_bpc": bpc, "wall_time": 100.0 + step})
              + "\n")
  (path / "run.json").write_text(json.dumps({"params": params, "batch_size": 2,
                                             "sequence_length": 8}))
  # As train saves it: gin's own text, which wraps a long path onto a second line.
  config.parse([], ["GPT.d_model = 8", "run.corpus = %r" % corpus])
  (path / "config.gin").write_text(gin.config_str())
  gin.clear_config()
  return path


RECORD = {"corpus": "shakespeare", "gzip": 3.01, "gzip_conditioned": 2.99,
          "bzip2": 2.26, "bzip2_conditioned": 2.14, "lzma": 2.6,
          "lzma_conditioned": 2.29, "ngram": 1.98, "ngram_order": 7}


@pytest.fixture
def figures(monkeypatch):
  """The figures compare.plot draws, kept open for inspection."""
  kept, close = [], compare.plt.close
  monkeypatch.setattr(compare.plt, "close", kept.append)
  yield kept
  for fig in kept:
    close(fig)


def horizontal_lines(fig):
  return [sorted((line.get_ydata()[0], line.get_label()) for line in ax.get_lines()
                 if len(set(line.get_ydata())) == 1 and line.get_label()[0] != "_")
          for ax in fig.axes]


def test_compare_lists_the_baselines_in_table_md_and_draws_them_on_the_bpc_plots(
    tmp_path, figures):
  a = fake_run(tmp_path / "a" / "seed0", "shakespeare", 2.5)
  b = fake_run(tmp_path / "b" / "seed0", "shakespeare", 2.4, params=2000)
  (a / "baselines.json").write_text(json.dumps(RECORD) + "\n")
  compare.compare([str(a), str(b)], str(tmp_path / "report"))

  rows = [[c.strip() for c in line.strip().strip("|").split("|")]
          for line in (tmp_path / "report" / "table.md").read_text().splitlines()[2:]]
  assert [r[0] for r in rows[:2]] == ["a/seed0", "b/seed0"]  # both were "seed0"
  baseline_rows = {r[0]: float(r[2]) for r in rows[2:]}
  assert baseline_rows == {
      "gzip -9 [shakespeare]": 3.01, "gzip -9 given train [shakespeare]": 2.99,
      "bzip2 -9 [shakespeare]": 2.26, "bzip2 -9 given train [shakespeare]": 2.14,
      "xz -9e [shakespeare]": 2.6, "xz -9e given train [shakespeare]": 2.29,
      "byte 7-gram (Kneser-Ney) [shakespeare]": 1.98}

  assert len(figures) == len(compare.X_AXES)
  expected = sorted((value, "%s %.2f" % (label.split(" [")[0], value))
                    for label, value in baseline_rows.items())
  for fig in figures:
    assert horizontal_lines(fig) == [expected, expected]  # training and held-out


def test_runs_on_different_corpora_share_no_baseline_lines(tmp_path, figures):
  a = fake_run(tmp_path / "a", "shakespeare", 2.5)
  b = fake_run(tmp_path / "b", str(tmp_path / "other.txt"), 2.4)
  baselines_file = tmp_path / "baselines.jsonl"
  other = dict(RECORD, corpus=str(tmp_path / "other.txt"), bzip2=1.0)
  baselines_file.write_text(json.dumps(RECORD) + "\n" + json.dumps(other) + "\n")
  compare.compare([str(a), str(b)], str(tmp_path / "report"), [str(baselines_file)])

  for fig in figures:
    assert horizontal_lines(fig) == [[], []]
  table = (tmp_path / "report" / "table.md").read_text()
  assert "| bzip2 -9 [shakespeare] | - | 2.260 |" in table
  assert "| bzip2 -9 [%s] | - | 1.000 |" % (tmp_path / "other.txt") in table

  # The same file, with runs all on the other corpus: its lines, not Shakespeare's.
  c = fake_run(tmp_path / "c", str(tmp_path / "other.txt"), 2.3)
  figures.clear()
  compare.compare([str(b), str(c)], str(tmp_path / "report2"), [str(baselines_file)])
  for fig in figures:
    assert (1.0, "bzip2 -9 1.00") in horizontal_lines(fig)[1]
    assert (2.26, "bzip2 -9 2.26") not in horizontal_lines(fig)[1]


# --- the command line ---------------------------------------------------------------


def test_baselines_prints_one_json_line_of_the_held_out_split_and_keeps_it(tmp_path):
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  model_dir = tmp_path / "run"
  result = cli.mtfzoo("baselines", "--gin_file", "gin/models/transformer.gin",
                      "--gin_param", "run.corpus = '%s'" % corpus,
                      "--model_dir", model_dir)
  lines = result.stdout.splitlines()
  assert len(lines) == 1
  record = json.loads(lines[0])
  assert record == json.loads((model_dir / "baselines.json").read_text())

  text = open(corpus, "rb").read()
  heldout = text[int(len(text) * 0.9):]  # the project's split: the last 10% held out
  assert record["heldout_bytes"] == len(heldout)
  assert record["gzip"] == pytest.approx(8 * len(zlib.compress(heldout, 9))
                                         / len(heldout), abs=1e-4)
  # The corpus repeats one line, so knowing the training split makes it nearly free.
  assert record["lzma_conditioned"] < 0.2 < record["lzma"]
  assert record["ngram"] < 0.2

  # compare finds it in the model_dir, and takes --baselines files.
  run = fake_run(tmp_path / "fake", corpus, 2.0)
  other = tmp_path / "b.jsonl"
  other.write_text(json.dumps(dict(RECORD, corpus="elsewhere")) + "\n")
  cli.mtfzoo("compare", run, "--baselines", other, "--out", tmp_path / "report")
  table = (tmp_path / "report" / "table.md").read_text()
  assert "| bzip2 -9 [elsewhere] | - | 2.260 |" in table
  # A model_dir's own baselines.json needs a run there: copy the record into the run.
  (run / "baselines.json").write_text((model_dir / "baselines.json").read_text())
  cli.mtfzoo("compare", run, "--out", tmp_path / "report")
  table = (tmp_path / "report" / "table.md").read_text()
  assert "| gzip -9 [%s] | - | %.3f |" % (corpus, record["gzip"]) in table


def test_baselines_of_a_missing_corpus_exits_2_with_one_line(tmp_path):
  model_dir = tmp_path / "run"
  result = cli.mtfzoo("baselines", "--gin_file", "gin/models/transformer.gin",
                      "--gin_param", "run.corpus = '%s'" % (tmp_path / "no.txt"),
                      "--model_dir", model_dir, check=False)
  assert result.returncode == 2
  assert result.stderr.startswith("mtfzoo baselines: ") and "no.txt" in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1
  assert not model_dir.exists()
