"""The files a report of JSON-line records makes: NAME.png from its plot and NAME.md
from its table, side by side in one directory (make recall, make bench-length)."""
import json
import os


def write_report(records_path, out_dir, name, plot, table):
  """Reads the records (one JSON object per line) and writes out_dir/NAME.png with
  plot(records, path) and out_dir/NAME.md with table(records); returns both paths."""
  with open(records_path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  os.makedirs(out_dir, exist_ok=True)
  png, md = (os.path.join(out_dir, name + ext) for ext in (".png", ".md"))
  plot(records, png)
  with open(md, "w") as f:
    f.write(table(records))
  return [png, md]


def series_style(i):
  """The line style and marker of the i-th line of a plot: matplotlib cycles 10
  colours, so each further 10 lines get another style and marker."""
  k = i // 10 % 3
  return {"linestyle": ("-", "--", ":")[k], "marker": ("o", "s", "^")[k]}
