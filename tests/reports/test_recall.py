"""make recall's table: each accuracy under its own model and d_model, and mqar's level
without recall in the table and the plot."""
from data import synthetic
from reports import recall


def record(model, d_model, accuracy):
  return {"task": "mqar", "model": model, "d_model": d_model, "accuracy": accuracy,
          "params": 1000 * d_model, "state_bytes_per_sequence": 2048 * d_model,
          "tokens_per_sec": 10.0 * d_model, "sequence_length": 128, "steps": 100,
          "num_pairs": 8}


def test_table_puts_each_accuracy_under_its_model_and_d_model():
  records = [record("mixer", 128, 0.25), record("transformer", 64, 0.5),
             record("mixer", 64, 0.125), record("transformer", 256, 1.0)]
  lines = recall.table(records).splitlines()
  header = [c.strip() for c in lines[2].strip("|").split("|")]
  assert header[:4] == ["model", "d_model 64", "d_model 128", "d_model 256"]
  rows = {cells[0]: cells for cells in
          ([c.strip() for c in line.strip("|").split("|")] for line in lines[4:])}
  assert rows["mixer"][1:4] == ["0.125", "0.250", "-"]
  assert rows["transformer"][1:4] == ["0.500", "-", "1.000"]
  assert rows["transformer"][4] == "128 / 512"  # state KB at d_model 64, then 256
  assert "8 key-value pairs" in lines[0]


def test_caption_names_the_learning_rate_of_each_d_model_in_column_order():
  records = [dict(record("mixer", 128, 0.25), learning_rate=1.5e-3),
             dict(record("mixer", 64, 0.125), learning_rate=3e-3),
             dict(record("transformer", 64, 0.5), learning_rate=3e-3)]
  assert "100 steps, learning rate 0.003 / 0.0015 by d_model)" in recall.table(records)
  mixed = records + [dict(record("transformer", 128, 0.5), learning_rate=1e-3)]
  assert "learning rate 0.003 / 0.001 or 0.0015 by d_model" in recall.table(mixed)
  # a record without the key: the caption cannot say what the width ran at
  assert "learning rate" not in recall.table(records + [record("gmlp", 64, 0.1)])


def test_mqar_level_without_recall_is_computed_for_the_records_task(monkeypatch):
  """The reader is scored on sequences of the records' own length and pair count."""
  asked = []

  def fake_score(inputs, targets, mask, num_pairs):
    asked.append((inputs.shape, int(mask.sum()), num_pairs))
    return 0.375

  monkeypatch.setattr(synthetic, "mqar_accuracy_without_recall", fake_score)
  records = [record("mixer", 64, 0.25)]
  assert "at best 0.375 (guessing: 1/8 = 0.125)" in recall.table(records).splitlines()[0]
  assert asked == [((recall.HELD_OUT_SEQUENCES, 128), 8 * recall.HELD_OUT_SEQUENCES, 8)]
  assert recall.accuracy_without_recall([dict(records[0], task="induction")]) is None


def test_counting_without_recall_scores_about_a_quarter_with_16_pairs():
  """With K distinct values the k-th answer is one of K - k + 1 values left, the mean of
  1/K .. 1/1 (0.211 for K = 16); values drawn with replacement repeat, which helps."""
  record_16 = dict(record("mixer", 64, 0.25), num_pairs=16)
  level = recall.accuracy_without_recall([record_16])
  assert sum(1 / k for k in range(1, 17)) / 16 < level < 0.25


def test_no_two_of_19_models_share_colour_and_marker_in_the_plot(tmp_path, monkeypatch):
  """matplotlib cycles 10 colours: a line past the tenth needs another marker (at one
  d_model there is no line to tell them apart by)."""
  import matplotlib.figure  # pylint: disable=g-import-not-at-top
  axes_seen = []
  save = matplotlib.figure.Figure.savefig

  def keep_axes(fig, *args, **kwargs):
    axes_seen.extend(fig.axes)
    return save(fig, *args, **kwargs)

  monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep_axes)
  recall.plot([record("model%d" % i, 64, i / 19) for i in range(19)],
              str(tmp_path / "recall.png"))
  for ax in axes_seen:
    styles = [(line.get_color(), line.get_marker()) for line in ax.get_lines()
              if not line.get_label().startswith("counting")]
    assert len(styles) == 19 and len(set(styles)) == 19, styles
    assert len(ax.get_lines()) == 20  # and mqar's level without recall
