"""Running the mtfzoo CLI in a subprocess, as a user would, on small corpora."""
import hashlib
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A tiny model that trains in seconds; tests add their own bindings after these.
TINY = ["GPT.num_layers = 1", "GPT.d_model = 32", "Attention.heads = 2",
        "run.batch_size = 4", "run.sequence_length = 16", "run.eval_steps = 2"]


def mtfzoo(*args, check=True, timeout=600):
  """Runs `mtfzoo args...`; returns the CompletedProcess (text stdout/stderr)."""
  command = [sys.executable, "-m", "cli"] + [str(a) for a in args]
  result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)
  if check and result.returncode != 0:
    raise AssertionError("mtfzoo %s failed (%d):\n%s" % (
        " ".join(map(str, args)), result.returncode, result.stderr[-3000:]))
  return result


# Many `mtfzoo` commands in one process through the console script's entry point
# (cli:main): they share one TensorFlow import and start-up, which cost more than a
# tiny run. Each command's exit status, stdout and stderr go to a JSON file. stderr is
# caught at file descriptor 2, so TensorFlow's C++ logs are caught too; the first
# command's stderr includes what importing the CLI and TensorFlow prints.
RUN_MANY = """
import contextlib, io, json, os, sys, tempfile
results = []
for i, argv in enumerate(json.loads(sys.argv[1])):
  out = io.StringIO()
  with tempfile.TemporaryFile("w+") as err:
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(err.fileno(), 2)
    try:
      with contextlib.redirect_stdout(out):
        if i == 0:
          from absl import flags
          import cli
        flags.FLAGS.unparse_flags()
        code = cli.main(["mtfzoo"] + argv)
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
    err.seek(0)
    results.append({"argv": argv, "code": code, "stdout": out.getvalue(),
                    "stderr": err.read()})
with open(sys.argv[2], "w") as f:
  json.dump(results, f)
"""


def mtfzoo_many(argvs, results_path, timeout=1800):
  """Runs `mtfzoo argv` for every argv, in order, in one process (a failing command
  does not stop the next); returns [{"argv", "code", "stdout", "stderr"}] in the
  same order."""
  argvs = [[str(a) for a in argv] for argv in argvs]
  result = subprocess.run([sys.executable, "-c", RUN_MANY, json.dumps(argvs),
                           str(results_path)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
  if result.returncode != 0:
    raise AssertionError("mtfzoo_many failed (%d):\n%s"
                         % (result.returncode, result.stderr[-3000:]))
  with open(results_path) as f:
    return json.load(f)


def gin_params(*bindings):
  args = []
  for b in list(TINY) + list(bindings):
    args += ["--gin_param", b]
  return args


def train_argv(model_dir, *bindings, gin_file="gin/models/transformer.gin"):
  return ["train", "--gin_file", gin_file, "--model_dir", model_dir,
          *gin_params(*bindings)]


def train(model_dir, *bindings, gin_file="gin/models/transformer.gin", check=True):
  return mtfzoo(*train_argv(model_dir, *bindings, gin_file=gin_file), check=check)


def write_corpus(path, repeats=60):
  """A small English text with non-ASCII UTF-8, long enough for a held-out split."""
  line = "Fair Verona, where we lay our scene — ‘café’ naïve. To be, or not to be.\n"
  with open(path, "w", encoding="utf-8") as f:
    f.write(line * repeats)
  return str(path)


def metrics(model_dir, name="metrics.jsonl"):
  with open(os.path.join(model_dir, name)) as f:
    return [json.loads(line) for line in f if line.strip()]


def tree_digest(directory):
  """A digest of every file name and content below a directory."""
  h = hashlib.sha256()
  for root, dirs, files in sorted(os.walk(directory)):
    dirs.sort()
    for name in sorted(files):
      path = os.path.join(root, name)
      h.update(os.path.relpath(path, directory).encode())
      with open(path, "rb") as f:
        h.update(f.read())
  return h.hexdigest()
