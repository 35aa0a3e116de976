"""Incremental decoding equals recomputing the window, for every model in gin/models."""
import gin
import numpy as np
import pytest

from layers.context import Context, PREDICT, pick
from models import sampling
from models.gpt import GPT
from mtf_compat import mtf, tf
from tests import numpy_reference as ref
from tests.mtf_testing import MtfRunner, make_dims, rng
from tests.models.test_gin_models import MODEL_FILES, parse_model_file

BATCH, LENGTH, D_MODEL, NUM_LAYERS = 3, 8, 32, 2
PROMPT_LENGTHS = np.array([1, 5, LENGTH], np.int32)  # short, mid-window, full window


@pytest.fixture(autouse=True)
def clear_gin_config():
  yield
  gin.clear_config()


def runner(model_file, mesh_shape="", layout="", batch=BATCH, bindings=()):
  """A PREDICT-mode runner and GPT for the model file, with weights large enough that
  the logits differ clearly from byte to byte and position to position."""
  parse_model_file(model_file)
  gin.parse_config(list(bindings))
  gin.parse_config(["Initialization.stddev = 0.3", "GPT.embedding_stddev = 1.0"])
  tf.set_random_seed(1)
  r = MtfRunner(mesh_shape, layout, mode=PREDICT, num_layers=NUM_LAYERS, batch=batch,
                length=LENGTH, d_model=D_MODEL)
  return r, GPT()


def samples(model_file, prompts, prompt_lengths, num_bytes, runs, mesh_shape="",
            layout=""):
  """One sample per run (keyword arguments of sampling.sample), all in one graph."""
  with tf.Graph().as_default():
    r, model = runner(model_file, mesh_shape, layout, batch=len(prompts))
    tokens = r.constant(prompts * (np.arange(LENGTH) < prompt_lengths[:, None]),
                        ["batch", "length"], tf.int32)
    prompt_length = r.constant(prompt_lengths, ["batch"], tf.int32)
    return r.run([sampling.sample(model, r.context, tokens, prompt_length, num_bytes,
                                  **run) for run in runs])


SHORT_CONV = "GPT.short_conv = 3"
# Other forms of model files: blocked ones (whose whole-window form differs from the
# one at LENGTH), and a short convolution before a windowed and a recurrent mixer.
OTHER_FORMS = [("linear_attention", "LinearAttention.chunk_size = 4"),
                 ("retention", "Retention.chunk_size = 2"),
                 ("local_attention", "LocalAttention.window = 4"),
                 ("transformer", SHORT_CONV), ("retention", SHORT_CONV)]


@pytest.mark.parametrize("model_file,bindings",
                         [(f, ()) for f in MODEL_FILES]
                         + [(f, (b,)) for f, b in OTHER_FORMS], ids=str)
def test_decoding_position_by_position_gives_the_whole_windows_logits(model_file,
                                                                      bindings):
  """Decoding from position 0 after a prefill of other bytes, and from FIRST after a
  prefill whose first FIRST bytes are the true ones (as sampling prefills a prompt)."""
  tokens = rng(0).randint(0, 256, (BATCH, LENGTH))
  first = 3
  with tf.Graph().as_default():
    r, model = runner(model_file, bindings=bindings)
    context = r.context
    tokens_mtf = r.constant(tokens, ["batch", "length"], tf.int32)
    whole = model.logits(tokens_mtf, context)
    stepped = []
    # A step may read only memories it wrote itself, or the prefill's before `first`.
    for start, prefill in [(0, (tokens + 101) % 256),
                           (first, np.where(np.arange(LENGTH) < first, tokens,
                                            (tokens + 57) % 256))]:
      context.start_prefill(first_step=mtf.constant(r.mesh, start, dtype=tf.int32))
      model.logits(r.constant(prefill, ["batch", "length"], tf.int32), context)
      memories = context.memories
      for p in range(start, LENGTH):
        position = mtf.constant(r.mesh, p, dtype=tf.int32)
        context.start_step(position, memories)
        stepped.append(model.logits(pick(tokens_mtf, context.length, position),
                                    context))
        memories = context.memories
      context.stop_decoding()
    whole_value, stepped_values = r.run([whole, stepped])
  stepped_values = np.stack(stepped_values, axis=1)
  np.testing.assert_allclose(stepped_values[:, :LENGTH], whole_value,
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(stepped_values[:, LENGTH:], whole_value[:, first:],
                             rtol=1e-4, atol=1e-4)
  assert np.std(whole_value) > 1.0  # the weights make the comparison a sharp one


# Recurrent mixers and no position table: they decode past the context from their state.
RECURRENT = ["linear_attention", "retention"]
WINDOWED = [f for f in MODEL_FILES if f not in RECURRENT]


@pytest.mark.parametrize("model_file", MODEL_FILES)
def test_models_decode_past_the_context_exactly_when_all_recurrent_without_positions(
    model_file):
  parse_model_file(model_file)
  assert GPT().decodes_past_the_context() == (model_file in RECURRENT)
  gin.parse_config(["GPT.positions = 'learned'"])
  assert not GPT().decodes_past_the_context()


# The whole softmax at temperature 1 is where the two ways would first part; how the
# sampler treats temperature and top-k does not depend on the model, so the other
# settings run on the Transformer alone.
SETTINGS = [dict(temperature=1.0, top_k=0, seed=3),
            dict(temperature=0.7, top_k=5, seed=4),
            dict(temperature=0.0, top_k=0, seed=0)]


@pytest.mark.parametrize("model_file", WINDOWED)
def test_incremental_sampling_equals_recomputation_byte_for_byte(model_file):
  """Rows with prompts of 1, 5 and LENGTH bytes, past the end of the window; with
  temperature, top-k and greedy settings on the Transformer."""
  settings = SETTINGS if model_file == "transformer" else SETTINGS[:1]
  runs = [dict(s, incremental=incremental) for s in settings
          for incremental in (True, False)]
  values = samples(model_file, rng(1).randint(0, 256, (BATCH, LENGTH)), PROMPT_LENGTHS,
                   2 * LENGTH - 2, runs)
  for s, incremental, recomputed in zip(settings, values[::2], values[1::2]):
    np.testing.assert_array_equal(incremental, recomputed, err_msg=str(s))
  assert len(np.unique(values[0])) > BATCH  # not one byte repeated: a real comparison


@pytest.mark.parametrize("model_file", ["transformer", "mixer_heads", "gmlp"])
def test_incremental_sampling_on_a_data_and_model_parallel_mesh(model_file):
  """On data:2,model:2 (4 virtual CPUs) decoding gives the bytes that recomputing
  gives on one device."""
  prompts = rng(2).randint(0, 256, (4, LENGTH))
  prompt_lengths = np.array([1, 3, 6, LENGTH], np.int32)
  run = dict(temperature=1.0, seed=5)
  [split] = samples(model_file, prompts, prompt_lengths, LENGTH + 3,
                    [dict(run, incremental=True)], "data:2,model:2",
                    "batch:data,heads:model,d_ff:model,vocab:model")
  [single] = samples(model_file, prompts, prompt_lengths, LENGTH + 3,
                     [dict(run, incremental=False)])
  np.testing.assert_array_equal(split, single)


def test_sampling_noise_names_its_random_algorithm():
  # "auto_select" is Philox on CPU and ThreeFry on TPU: the same seed would sample other
  # bytes on a TPU. Philox (algorithm 1) is implemented alike on both.
  with tf.Graph().as_default() as graph:
    mesh = mtf.Mesh(mtf.Graph(), "mesh")
    dims = [mtf.Dimension(n, s) for n, s in (("batch", 2), ("generated", 3),
                                              ("vocab", 256))]
    sampling.gumbel_noise(mesh, *dims, seed=5)
    [op] = [op for op in graph.get_operations()
            if op.type == "StatelessRandomUniformV2"]
    assert tf.get_static_value(op.inputs[-1]) == 1  # Algorithm.PHILOX


@pytest.mark.parametrize("model_file,bindings",
                         [(f, ()) for f in RECURRENT] + [("retention", (SHORT_CONV,))],
                         ids=str)
def test_recurrent_models_sample_past_the_context_as_a_longer_window_would(model_file,
                                                                          bindings):
  """Decoding 2·LENGTH - 2 bytes from the state at context LENGTH gives the bytes that
  recomputing the whole (never sliding) window gives at context 3·LENGTH, with the same
  variables."""
  prompts = rng(1).randint(0, 256, (BATCH, LENGTH))
  num_bytes = 2 * LENGTH - 2
  settings = [dict(temperature=1.0, top_k=0, seed=3), dict(temperature=0.0, seed=0)]
  with tf.Graph().as_default():
    r, model = runner(model_file, bindings=bindings)
    assert model.decodes_past_the_context()
    long = Context(r.mesh, PREDICT, make_dims(batch=BATCH, length=3 * LENGTH,
                                              d_model=D_MODEL), num_layers=NUM_LAYERS)
    prompt_length = r.constant(PROMPT_LENGTHS, ["batch"], tf.int32)
    masked = prompts * (np.arange(LENGTH) < PROMPT_LENGTHS[:, None])
    tokens = r.constant(masked, ["batch", "length"], tf.int32)
    long_tokens = mtf.import_tf_tensor(
        r.mesh, tf.constant(np.pad(masked, [(0, 0), (0, 2 * LENGTH)]), tf.int32),
        mtf.Shape([long.dims["batch"], long.length]))
    fetches = []
    for s in settings:
      fetches.append(sampling.sample(model, r.context, tokens, prompt_length, num_bytes,
                                     incremental=True, **s))
      fetches.append(sampling.sample(model, long, long_tokens, prompt_length, num_bytes,
                                     incremental=False, **s))
    values = r.run(fetches)
  for s, from_state, long_window in zip(settings, values[::2], values[1::2]):
    np.testing.assert_array_equal(from_state, long_window, err_msg=str(s))
  assert len(np.unique(values[0])) > BATCH
# The χ² test's critical value at significance 0.001 with ν degrees of freedom, by the
# Wilson–Hilferty approximation (Wilson & Hilferty 1931, "The distribution of
# chi-square", PNAS 17: χ²/ν is close to normal after a cube root):
#   χ²_0.999(ν) ≈ ν (1 − 2/(9ν) + z √(2/(9ν)))³,  z = 3.0902, the standard normal's
# 0.999 quantile. Against the tabulated values (NIST/SEMATECH e-Handbook of Statistical
# Methods, §1.3.6.7.4, "Critical values of the chi-square distribution") it is 1.4%
# high at ν = 4 (18.72 vs 18.47), 0.6% at ν = 10 (29.76 vs 29.59), less beyond.
Z_0_999 = 3.0902


def chi2_critical_0_999(dof):
  return dof * (1 - 2 / (9 * dof) + Z_0_999 * np.sqrt(2 / (9 * dof))) ** 3


def sampled_bytes(logits, settings, draws):
  """`draws` bytes per setting (dict of temperature, top_k, seed), each sampled by the
  sampler's own next_byte from `logits` [256] and its Gumbel noise."""
  with tf.Graph().as_default():
    r = MtfRunner(batch=draws, length=1)
    batch, vocab = r.context.dims["batch"], r.context.dims["vocab"]
    tiled = r.constant(np.tile(logits, (draws, 1)), ["batch", "vocab"])
    one = mtf.Dimension("generated", 1)
    outputs = []
    for s in settings:
      noise = mtf.reduce_sum(sampling.gumbel_noise(r.mesh, batch, one, vocab, s["seed"]),
                             reduced_dim=one)
      outputs.append(sampling.next_byte(tiled, noise, s["temperature"], s["top_k"],
                                        vocab))
    return r.run(outputs)


def test_sampled_byte_frequencies_match_softmax_over_the_top_k_at_temperature_t():
  """Sampling from softmax(logits / T) restricted to the k largest logits (Fan et al.
  2018, top-k; k = 0 keeps all 256), checked by a χ² goodness-of-fit test (Pearson) of
  20,000 draws at significance 0.001 (fixed seeds, so the outcome is deterministic),
  with the expected frequencies computed here in numpy. Bins expected to hold fewer
  than 5 draws are pooled into one."""
  draws = 20000
  logits = rng(3).randn(256) * 2.0
  settings = [dict(temperature=1.0, top_k=0, seed=11),
              dict(temperature=0.7, top_k=5, seed=12),
              dict(temperature=2.0, top_k=40, seed=13),
              dict(temperature=0.5, top_k=0, seed=14)]
  order = np.argsort(-logits)
  for s, samples in zip(settings, sampled_bytes(logits, settings, draws)):
    allowed = order[:s["top_k"]] if s["top_k"] else order
    assert np.isin(samples, allowed).all(), s  # never a byte outside the top k
    p = ref.softmax(logits[allowed] / s["temperature"])
    observed = np.array([(samples == b).sum() for b in allowed], float)
    expected = p * draws
    small = expected < 5
    if small.any():
      observed = np.append(observed[~small], observed[small].sum())
      expected = np.append(expected[~small], expected[small].sum())
    chi2 = ((observed - expected) ** 2 / expected).sum()
    dof = len(expected) - 1
    assert chi2 < chi2_critical_0_999(dof), (s, chi2, dof)


def test_top_k_1_and_temperature_near_0_always_give_the_most_likely_byte():
  draws = 2000
  logits = rng(4).randn(256)
  logits[17] = logits.max() + 0.5  # the most likely byte, by a clear margin
  settings = [dict(temperature=1.0, top_k=1, seed=1),
              dict(temperature=3.0, top_k=1, seed=2),
              dict(temperature=0.0, top_k=0, seed=3),   # greedy
              dict(temperature=1e-3, top_k=0, seed=4)]  # T → 0
  for s, samples in zip(settings, sampled_bytes(logits, settings, draws)):
    np.testing.assert_array_equal(samples, 17, err_msg=str(s))
