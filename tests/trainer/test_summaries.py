"""TensorBoard summaries: the steps and values metrics.jsonl records."""
import glob
import os

import pytest

from mtf_compat import tf
from tests import cli_testing as cli


def scalar_events(model_dir, tag):
  """[(step, value)] of a scalar summary in model_dir's event files."""
  found = []
  for path in glob.glob(os.path.join(model_dir, "events.out.tfevents.*")):
    for event in tf.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == tag:
          found.append((event.step, float(tf.make_ndarray(value.tensor))))
  return sorted(found)


def test_tensorboard_steps_and_losses_equal_metrics_jsonl(tmp_path):
  corpus = cli.write_corpus(tmp_path / "corpus.txt")
  run = tmp_path / "run"
  cli.train(run, "run.corpus = '%s'" % corpus, "run.train_steps = 4")
  records = cli.metrics(run)
  assert [r["step"] for r in records] == [1, 2, 3, 4]
  events = scalar_events(str(run), "loss")
  assert [s for s, _ in events] == [1, 2, 3, 4]
  assert [v for _, v in events] == pytest.approx([r["loss"] for r in records],
                                                 rel=1e-6)
