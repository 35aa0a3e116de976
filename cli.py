"""mtfzoo: train | eval | sample | score | export | compare | bench | layout | synthetic |
baselines | prepare.

A thin dispatcher: it parses flags and gin, then calls one function of a job package
(trainer, inference, reports) per command. Those packages are imported inside the
command functions, so a flag mistake is reported before TensorFlow's seconds-long
import. Every mistake a user can make ends in one line on stderr and exit status 2.
"""
# pylint: disable=g-import-not-at-top
import json
import logging
import os
import sys
import warnings

# Quiet TensorFlow before it is imported: C++ logs, deprecation warnings of tf.compat.v1.
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
logging.getLogger("tensorflow").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning)

from absl import flags  # noqa: E402

COMMANDS = ("train", "eval", "sample", "score", "export", "compare", "bench",
            "layout", "synthetic", "baselines", "prepare")
USAGE = "usage: mtfzoo {%s} [flags]  (mtfzoo --helpfull lists the flags)" % "|".join(
    COMMANDS)

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("gin_file", [], "Gin file (repeatable), e.g. gin/quickstart.gin")
flags.DEFINE_multi_string("gin_param", [], "Gin binding (repeatable), e.g. "
                          "run.train_steps=100")
flags.DEFINE_string("model_dir", None, "Directory of checkpoints, config and metrics")
flags.DEFINE_enum("split", "eval", ["eval", "test"], "eval: the split to measure "
                  "(test: enwik8's test split)")
flags.DEFINE_string("prompt", "\n", "sample: the text to continue")
flags.DEFINE_integer("length", 200, "sample/export: bytes to generate")
flags.DEFINE_float("temperature", 1.0, "sample/export: 0 is greedy")
flags.DEFINE_integer("top_k", 0, "sample: keep the k most likely bytes (0: all)")
flags.DEFINE_integer("seed", 0, "sample: random seed; synthetic: the seed of the "
                     "generated sequences")
flags.DEFINE_string("text", None, "score: the text to score")
flags.DEFINE_string("export_dir", None, "export: the directory to create")
flags.DEFINE_string("out", None, "compare: the output directory; layout: a JSON file "
                    "of the candidates")
flags.DEFINE_multi_string("baselines", [], "compare: a file of `mtfzoo baselines` JSON "
                          "lines (repeatable), besides each run's baselines.json")
flags.DEFINE_integer("match_params", 0, "bench: set GPT.d_model (a multiple of 8) so "
                     "the model has about this many parameters")
flags.DEFINE_integer("bench_warmup", 10, "bench: training steps run before the timed ones")
flags.DEFINE_integer("bench_steps", 50, "bench: timed training steps (the median step "
                     "time gives tokens/s)")
flags.DEFINE_bool("sampling_speeds", True, "bench: also time the sampler (bytes/s "
                  "incremental and recomputed, and at positions 100 and 1000); "
                  "--nosampling_speeds leaves them out")
flags.DEFINE_integer("devices", None, "layout: the number of devices to lay the model "
                     "over")
flags.DEFINE_float("device_memory_gb", None, "layout: memory per device in GB (10^9 "
                   "bytes); layouts needing more are marked")
flags.DEFINE_string("task", None, "synthetic: mqar, induction or selective_copy")
flags.DEFINE_integer("num_pairs", None, "synthetic: mqar's key-value pairs (default: "
                     "DEFAULT_NUM_PAIRS in reports/synthetic.py)")
flags.DEFINE_string("corpus", None, "prepare: 'shakespeare' or a text file or directory")
flags.DEFINE_string("data_dir", None, "prepare: the directory of shards (run.data_dir)")
flags.DEFINE_integer("sequence_length", None, "prepare: bytes per window, less one")
flags.DEFINE_integer("workers", None, "prepare: processes writing shards (default: one "
                     "per core)")
flags.DEFINE_bool("prepare", False, "bench: preparation MB/s and memory on generated "
                  "0.5 and 2 GB corpora, and input pipeline vs training speed")
flags.DEFINE_list("depths", [], "bench: blocks to measure activation memory and speed "
                  "at, for each residual stream (e.g. 4,8,16,32): one JSON line each")
flags.DEFINE_string("tpu", None, "run.use_tpu=True: 'local' on a TPU VM, a Cloud TPU "
                    "name, or a TPU Node's grpc:// address")
flags.DEFINE_string("zone", None, "Cloud TPU zone")
flags.DEFINE_string("project", None, "Cloud project of the TPU")


# Commands that may run from --gin_file alone (the others read a model_dir's config).
GIN_FILE_COMMANDS = ("train", "bench", "layout", "synthetic", "baselines")
# Commands that measure a config and need no model_dir (synthetic and baselines may
# keep their result in one).
MODEL_DIR_OPTIONAL = ("bench", "layout", "synthetic", "baselines")


class UsageError(Exception):
  pass


def settings_for(command):
  """Parses gin (saved config of model_dir, then --gin_file, then --gin_param) and
  returns the run settings."""
  # pylint: disable=g-import-not-at-top
  from trainer import config
  from trainer.errors import UserError
  from trainer.run import Run
  if command == "baselines":
    import reports.baselines  # noqa: F401  (registers its configurables)
  saved = config.saved_config(FLAGS.model_dir) if FLAGS.model_dir else None
  if command == "train" and FLAGS.gin_file:
    saved = None  # the gin files given define the run; the checkpoint check guards it
  elif command in GIN_FILE_COMMANDS and not (FLAGS.gin_file or saved):
    raise UserError("%s needs --gin_file (or a --model_dir that holds config.gin)"
                    % command)
  elif command not in GIN_FILE_COMMANDS and saved is None:
    raise UserError("model_dir %r holds no config.gin: train a model there first"
                    % FLAGS.model_dir)
  config.parse(FLAGS.gin_file, FLAGS.gin_param, base_config=saved)
  try:
    return Run()
  except UserError as e:  # gin appends "In call to configurable 'run'" on a new line
    raise UserError(config.first_line(e))
  except (ValueError, TypeError) as e:
    raise UserError("gin: %s" % config.first_line(e))


def require(flag_name):
  if getattr(FLAGS, flag_name) in (None, ""):
    raise UsageError("--%s is required" % flag_name)
  return getattr(FLAGS, flag_name)


def check_sampling_flags():
  from trainer.errors import UserError  # pylint: disable=g-import-not-at-top
  if FLAGS.temperature < 0:
    raise UserError("--temperature must be >= 0, got %g" % FLAGS.temperature)
  if FLAGS.top_k < 0:
    raise UserError("--top_k must be >= 0, got %d" % FLAGS.top_k)
  if FLAGS.length <= 0:
    raise UserError("--length must be > 0, got %d" % FLAGS.length)


def tpu_flags():
  return {"tpu": FLAGS.tpu, "zone": FLAGS.zone, "project": FLAGS.project}


def compare_command(args):
  from reports import compare
  if not args:
    raise UsageError("compare needs run directories: mtfzoo compare D1 D2 --out DIR")
  compare.compare(args, require("out"), FLAGS.baselines)


def prepare_command(args):
  from trainer import prepare
  if args:
    raise UsageError("unexpected arguments: %s" % " ".join(args))
  prepare.prepare(require("corpus"), require("data_dir"), require("sequence_length"),
                  FLAGS.workers)


def bench_command(settings):
  from reports import bench
  if FLAGS.prepare:
    from reports import bench_data
    print(json.dumps(bench_data.bench_data(settings)), flush=True)
    return
  if FLAGS.bench_warmup < 1 or FLAGS.bench_steps < 1:
    raise UsageError("--bench_warmup and --bench_steps must be >= 1, got %d and %d"
                    % (FLAGS.bench_warmup, FLAGS.bench_steps))
  if FLAGS.depths:
    from reports import bench_depth
    try:
      depths = [int(d) for d in FLAGS.depths]
    except ValueError:
      depths = []
    if not depths or min(depths) < 1:
      raise UsageError("--depths must be positive numbers of blocks, e.g. 4,8,16,32")
    bench_depth.bench_depth(settings, depths)
    return
  if FLAGS.match_params:
    settings = bench.match_params(settings, FLAGS.match_params)
  print(json.dumps(bench.bench(settings, FLAGS.bench_warmup, FLAGS.bench_steps,
                               FLAGS.sampling_speeds)), flush=True)


def layout_command(settings):
  from reports import layout_plan
  plan = layout_plan.plan(settings, require("devices"), FLAGS.device_memory_gb)
  print(plan.table(), flush=True)
  if FLAGS.out:
    plan.write_json(FLAGS.out)


def synthetic_command(settings):
  from reports import synthetic
  # The model is named by its gin file: gin/models/mixer.gin -> "mixer".
  model = (os.path.splitext(os.path.basename(FLAGS.gin_file[0]))[0] if FLAGS.gin_file
           else None)
  print(json.dumps(synthetic.train_and_measure(
      settings, require("task"), model, FLAGS.seed, FLAGS.num_pairs, FLAGS.model_dir)),
        flush=True)


def baselines_command(settings):
  from reports import baselines
  record = baselines.baselines(settings.corpus)
  if FLAGS.model_dir:
    baselines.write(record, FLAGS.model_dir)
  sys.stdout.write(baselines.json_line(record))


def train_command(settings):
  from trainer import loop
  loop.train(settings, require("model_dir"), tpu_flags())


def eval_command(settings):
  from trainer import loop
  model_dir = require("model_dir")
  manifests = loop.shards(settings, model_dir, FLAGS.split)
  result = loop.evaluate_corpora(settings, model_dir, manifests, tpu_flags=tpu_flags())
  print("%s: %.4f" % ("test bpc" if FLAGS.split == "test" else "bpc", result["bpc"]))
  if len(settings.corpora) > 1:  # the line above is the mixture's weighted mean
    for name, bpc in result["bpc_by_corpus"].items():
      print("bpc %s: %.4f" % (name, bpc))


def sample_command(settings):
  from inference import sample
  check_sampling_flags()
  generated, cut, past = sample.sample(settings, require("model_dir"), FLAGS.prompt,
                                       FLAGS.length, FLAGS.temperature, FLAGS.top_k,
                                       FLAGS.seed, tpu_flags())
  if cut:
    print("(the prompt is longer than the context: using its last %d bytes)"
          % settings.sequence_length, file=sys.stderr)
  if past:
    print("(past the %d-byte context: %s)" % (settings.sequence_length, past),
          file=sys.stderr)
  sys.stdout.write(FLAGS.prompt + generated.decode("utf-8", errors="replace") + "\n")


def score_command(settings):
  from inference import score
  if FLAGS.text is None:
    raise UsageError("--text is required")
  print(json.dumps(score.score(settings, require("model_dir"), FLAGS.text,
                               tpu_flags())))


def export_command(settings):
  from inference import export
  check_sampling_flags()
  export.export(settings, require("model_dir"), require("export_dir"), FLAGS.length,
                FLAGS.temperature, FLAGS.top_k, seed=FLAGS.seed)


# Commands that run a config: each takes the run settings parsed from gin.
CONFIG_COMMANDS = {"train": train_command, "eval": eval_command, "bench": bench_command,
                   "sample": sample_command, "score": score_command,
                   "export": export_command, "layout": layout_command,
                   "synthetic": synthetic_command, "baselines": baselines_command}


def run_command(command, args):
  if command in ("compare", "prepare"):
    {"compare": compare_command, "prepare": prepare_command}[command](args)
    return
  if args:
    raise UsageError("unexpected arguments: %s" % " ".join(args))
  if command not in MODEL_DIR_OPTIONAL:
    require("model_dir")
  CONFIG_COMMANDS[command](settings_for(command))


def spend_the_xla_compile_notice(tf):
  """XLA's C++ logging ignores TF_CPP_MIN_LOG_LEVEL and prints two lines on stderr at a
  process's first compile (layers/fused.py compiles when training and evaluating), and
  never again: compile a trivial cluster first, with stderr pointed at /dev/null."""
  saved = os.dup(2)
  try:
    with open(os.devnull, "w") as devnull:
      os.dup2(devnull.fileno(), 2)
      with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [])
        with tf.xla.experimental.jit_scope():
          y = x * x + 1.0
        with tf.Session() as session:
          session.run(y, {x: 1.0})
  finally:
    os.dup2(saved, 2)
    os.close(saved)


def main(argv=None):
  argv = list(sys.argv if argv is None else argv)
  try:
    rest = FLAGS(argv)
  except flags.Error as e:
    print("mtfzoo: %s" % str(e).splitlines()[0], file=sys.stderr)
    return 2
  if len(rest) < 2 or rest[1] not in COMMANDS:
    print(USAGE, file=sys.stderr)
    return 2
  from mtf_compat import tf  # pylint: disable=g-import-not-at-top
  tf.logging.set_verbosity(tf.logging.ERROR)
  if rest[1] in ("train", "eval", "bench", "synthetic"):
    spend_the_xla_compile_notice(tf)
  from trainer.errors import UserError  # pylint: disable=g-import-not-at-top
  try:
    run_command(rest[1], rest[2:])
  except (UserError, UsageError) as e:
    print("mtfzoo %s: %s" % (rest[1], e), file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("mtfzoo %s: interrupted" % rest[1], file=sys.stderr)
    return 130
  return 0


if __name__ == "__main__":
  sys.exit(main())
