"""Every model file in gin/models/ parses, builds a causal GPT and starts at ln 256."""
import dataclasses
import functools
import importlib
import math
import os
import pkgutil

import gin
import numpy as np
import pytest

import layers
from layers import variables
from models.gpt import GPT
from optimizers import Adam
from mtf_compat import mtf, tf
from tests import numpy_reference as ref
from tests.mtf_testing import MtfRunner, rng

GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "gin")
MODELS_DIR = os.path.join(GIN_DIR, "models")
MODEL_FILES = sorted(f[:-len(".gin")] for f in os.listdir(MODELS_DIR)
                     if f.endswith(".gin"))
BATCH, LENGTH, D_MODEL, NUM_LAYERS = 2, 8, 32, 2
PERTURBED_AFTER = (0, 3, 6)

ATTENTION = {"q", "k", "v", "o"}
MIXER = {"head_norm/scale", "head_norm/bias", "w1", "w2"}
GMLP = {"in_u", "in_v", "gate_norm/scale", "gate_norm/bias", "spatial", "spatial_bias",
        "out"}
TOKEN_MIXER_VARIABLES = {
    "base": ATTENTION, "transformer": ATTENTION, "transformer_rezero": ATTENTION,
    "shared_attention": {"map"},
    "mixer": MIXER, "mixer_heads": MIXER, "mixer_rezero": {"w1", "w2"},
    "transformer_moe": ATTENTION, "mixer_moe": MIXER,
    "gmlp": GMLP, "gmlp_tanh": GMLP,
    "synthesizer_dense": {"w1", "w2", "v", "o"},
    "synthesizer_random": {"r", "v", "o"},
    "container": {"q", "k", "v", "static_map", "alpha", "beta", "o"},
    "linear_attention": ATTENTION,
    "retention": ATTENTION | {"g"},
    "local_attention": ATTENTION,
    "transformer_rotary": ATTENTION, "transformer_alibi": ATTENTION,
    "hyena": {"in_v", "in_x1", "in_x2", "out"} | {
        "%s/%s" % (scope, name) for scope in ("short_v", "short_x1", "short_x2")
        for name in ("taps",)} | {
        "filter_%d/%s" % (n, name) for n in (1, 2)
        for name in ("skip", "w_cos", "w_sin", "w_hidden", "w_out")},
}


@pytest.fixture(autouse=True)
def clear_gin_config():
  yield
  gin.clear_config()


def register_layers():
  for module in pkgutil.iter_modules(layers.__path__):
    importlib.import_module("layers." + module.name)


@dataclasses.dataclass
class Built:
  tokens: np.ndarray
  logits: np.ndarray           # for `tokens`
  perturbed_logits: list       # one per PERTURBED_AFTER: bytes after i changed
  loss: float
  values: dict                 # variable name -> value
  shapes: dict                 # variable name -> mtf.Shape
  records: dict                # variable name -> VariableRecord


def parse_model_file(model_file):
  """gin/models/<model_file>.gin, as the trainer parses it, with a tiny size."""
  register_layers()
  gin.clear_config()
  gin.add_config_file_search_path(GIN_DIR)
  gin.parse_config_file(os.path.join(MODELS_DIR, model_file + ".gin"))
  gin.parse_config(["GPT.num_layers = %d" % NUM_LAYERS, "GPT.d_model = %d" % D_MODEL])


@functools.lru_cache(maxsize=None)
def build(model_file):
  """Builds the model file's GPT once and runs it on some bytes and their variants."""
  parse_model_file(model_file)
  tokens = rng(0).randint(0, 256, (BATCH, LENGTH + 1))
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    r = MtfRunner(batch=BATCH, length=LENGTH, d_model=D_MODEL)
    fed = tf.placeholder(tf.int32, [BATCH, LENGTH + 1])
    shape = mtf.Shape(r.dims(["batch", "length"]))
    inputs = mtf.import_tf_tensor(r.mesh, fed[:, :-1], shape)
    targets = mtf.import_tf_tensor(r.mesh, fed[:, 1:], shape)
    model = GPT()
    logits = model.logits(inputs, r.context)
    loss = model.loss(logits, targets, r.context)
    r.lower()
    fetches = [r.tf_tensor(logits), r.tf_tensor(loss)]
    logits_value, loss_value = r.session.run(fetches, {fed: tokens})
    perturbed_logits = []
    for i in PERTURBED_AFTER:
      perturbed = tokens.copy()
      perturbed[:, i + 1:] = (perturbed[:, i + 1:] + 17) % 256
      perturbed_logits.append(r.session.run(fetches[0], {fed: perturbed}))
    all_variables = r.graph.trainable_variables
    return Built(tokens, logits_value, perturbed_logits, float(loss_value),
                 {v.name: r.variable_value(v) for v in all_variables},
                 {v.name: v.shape for v in all_variables},
                 {v.name: variables.record_of(v) for v in all_variables})


def test_every_model_file_is_tested():
  assert sorted(TOKEN_MIXER_VARIABLES) == MODEL_FILES


@pytest.mark.parametrize("model_file", MODEL_FILES)
def test_model_file_builds_a_gpt_whose_loss_starts_near_ln_256(model_file):
  built = build(model_file)
  assert math.isfinite(built.loss)
  # 16 targets and logits of std ≈ 0.1: the mean moves by ~0.03 with the initial values.
  assert abs(built.loss - math.log(256)) < 0.1, built.loss


# Models whose convolutions run as FFTs: causal up to float32 rounding (1e-7 relative).
FFT_MODELS = {"hyena"}


def assert_unchanged(model_file, earlier, perturbed):
  """Bit-identical, or for FFT models equal within float32 rounding of the scale."""
  if model_file in FFT_MODELS:
    np.testing.assert_allclose(perturbed, earlier, rtol=0,
                               atol=1e-5 * np.abs(earlier).max())
  else:
    np.testing.assert_array_equal(earlier, perturbed)


@pytest.mark.parametrize("model_file", MODEL_FILES)
def test_model_file_logits_ignore_future_bytes(model_file):
  built = build(model_file)
  for i, perturbed in zip(PERTURBED_AFTER, built.perturbed_logits):
    assert_unchanged(model_file, built.logits[:, :i + 1], perturbed[:, :i + 1])
    assert not np.allclose(built.logits[:, i + 1:], perturbed[:, i + 1:])


@pytest.mark.parametrize("model_file", MODEL_FILES)
def test_model_file_builds_its_token_mixer_in_every_block(model_file):
  built = build(model_file)
  for block in range(NUM_LAYERS):
    prefix = "block_%d/token_mixing/mixer/" % block
    names = {n[len(prefix):] for n in built.values if n.startswith(prefix)}
    assert names == TOKEN_MIXER_VARIABLES[model_file]
    has_channel_mixer = any(n.startswith("block_%d/channel_mixing/" % block)
                            for n in built.values)
    assert has_channel_mixer == (model_file not in ("gmlp", "gmlp_tanh"))


@pytest.mark.parametrize("model_file,map_shape", [("mixer", [LENGTH, LENGTH]),
                                                  ("mixer_heads", [8, LENGTH, LENGTH])])
def test_mixer_model_files_set_the_number_of_heads(model_file, map_shape):
  shape = build(model_file).shapes["block_0/token_mixing/mixer/w1"]
  assert shape.to_integer_list == map_shape


def test_shared_attention_has_length_squared_parameters_per_layer():
  built = build("shared_attention")
  for block in range(NUM_LAYERS):
    prefix = "block_%d/token_mixing/mixer/" % block
    sizes = [s.size for n, s in built.shapes.items() if n.startswith(prefix)]
    assert sizes == [LENGTH * LENGTH]
    assert built.records[prefix + "map"].role == variables.SEQ_MAP


REZERO_FILES = [f for f in MODEL_FILES if f.endswith("_rezero")]


def test_rezero_presets_exist():
  assert REZERO_FILES == ["mixer_rezero", "transformer_rezero"]


@pytest.mark.parametrize("model_file", REZERO_FILES)
def test_rezero_presets_have_no_layer_norm_in_the_blocks(model_file):
  """ReZero (Bachlechner et al. 2020) is x + α·F(x): no LayerNorm in a block, neither
  before a sublayer nor inside one; only the final norm before the logits remains."""
  built = build(model_file)
  norms = [n for n, r in built.records.items() if r.role == variables.NORM]
  assert norms == ["final_norm/scale", "final_norm/bias"], norms
  # The plain preset it derives from has 2 LayerNorms of 2·d_model per block more
  # (and 3 in the Mixer's case), against 2 scalars α per block.
  plain = build(model_file[:-len("_rezero")])
  removed = sum(s.size for n, s in plain.shapes.items() if n.startswith("block_")
                and plain.records[n].role == variables.NORM)
  params = lambda b: sum(s.size for s in b.shapes.values())
  assert params(built) == params(plain) - removed + 2 * NUM_LAYERS


@pytest.mark.parametrize("model_file", REZERO_FILES)
def test_rezero_blocks_are_the_identity_at_init(model_file):
  built = build(model_file)
  v = built.values
  rezero = [n for n in v if n.endswith("rezero_alpha")]
  assert len(rezero) == 2 * NUM_LAYERS and all(v[n] == 0.0 for n in rezero)
  tokens = built.tokens[:, :-1]
  x = v["byte_embedding"][tokens] + v["position_embedding"][None]
  x = ref.layer_norm(x, v["final_norm/scale"], v["final_norm/bias"])
  np.testing.assert_allclose(built.logits, x @ v["logits"], rtol=1e-5, atol=1e-6)


def loss_and_gradients(model_file, mesh_shape, layout, bindings=()):
  parse_model_file(model_file)
  gin.parse_config(list(bindings))
  tokens = rng(1).randint(0, 256, (4, LENGTH + 1))
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    r = MtfRunner(mesh_shape, layout, batch=4, length=LENGTH, d_model=D_MODEL)
    inputs = r.constant(tokens[:, :-1], ["batch", "length"], tf.int32)
    targets = r.constant(tokens[:, 1:], ["batch", "length"], tf.int32)
    model = GPT()
    loss = model.loss(model.logits(inputs, r.context), targets, r.context)
    names = [v.name for v in r.graph.trainable_variables]
    grads = mtf.gradients([loss], [v.outputs[0] for v in r.graph.trainable_variables])
    loss_value, *grad_values = r.run([loss] + grads)
  return loss_value, dict(zip(names, grad_values))


@pytest.mark.parametrize("model_file,bindings",
                         [(f, ()) for f in MODEL_FILES]
                         + [("transformer", ("GPT.short_conv = 3",))], ids=str)
def test_model_file_loss_and_gradients_are_equal_on_a_2x2_mesh(model_file, bindings):
  loss, grads = loss_and_gradients(model_file, "", "", bindings)
  split_loss, split_grads = loss_and_gradients(
      model_file, "data:2,model:2", "batch:data,heads:model,d_ff:model,vocab:model",
      bindings)
  np.testing.assert_allclose(split_loss, loss, rtol=1e-5)
  assert split_grads.keys() == grads.keys()
  for name, g in grads.items():
    np.testing.assert_allclose(split_grads[name], g, rtol=1e-4, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("model_file,one_device,blocked", [
    ("linear_attention", "LinearAttention.chunk_size = 8", "LinearAttention.chunk_size = 4"),
    ("retention", "Retention.chunk_size = 8", "Retention.chunk_size = 4"),
    ("local_attention", "LocalAttention.window = 4", "LocalAttention.window = 4")])
def test_blocked_forms_give_the_same_loss_and_gradients_on_a_2x2_mesh(model_file,
                                                                      one_device, blocked):
  """Chunks (blocks) of 4 of LENGTH = 8 on data:2,model:2 against one device, where
  the chunked models run their parallel form."""
  loss, grads = loss_and_gradients(model_file, "", "", [one_device])
  split_loss, split_grads = loss_and_gradients(
      model_file, "data:2,model:2", "batch:data,heads:model,d_ff:model,vocab:model",
      [blocked])
  np.testing.assert_allclose(split_loss, loss, rtol=1e-5)
  for name, g in grads.items():
    np.testing.assert_allclose(split_grads[name], g, rtol=1e-4, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("model_file,has_table", [
    ("transformer", True), ("transformer_rotary", False), ("transformer_alibi", False),
    ("linear_attention", False), ("retention", False)])
def test_positions_none_leaves_out_the_position_table(model_file, has_table):
  assert ("position_embedding" in build(model_file).values) == has_table


def test_positions_must_be_learned_or_none():
  with pytest.raises(ValueError, match="GPT.positions"):
    GPT(positions="sinusoidal")
@pytest.mark.parametrize("model_file", REZERO_FILES)
def test_rezero_lr_multiplier_reaches_the_update_of_alpha_only(model_file):
  """Residual.rezero_lr_multiplier = k scales α's step and nothing else: Adam's first
  step moves every parameter by lr·g/(|g| + ε) = ±lr elementwise (Kingma & Ba 2015,
  bias-corrected m̂ / √v̂ = g / |g|), so α moves by k·lr and the others by at most lr."""
  lr, k = 1e-3, 10.0
  parse_model_file(model_file)
  gin.parse_config(["Residual.rezero_lr_multiplier = %r" % k])
  tokens = rng(2).randint(0, 256, (BATCH, LENGTH + 1))
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    r = MtfRunner(batch=BATCH, length=LENGTH, d_model=D_MODEL, num_layers=NUM_LAYERS)
    inputs = r.constant(tokens[:, :-1], ["batch", "length"], tf.int32)
    targets = r.constant(tokens[:, 1:], ["batch", "length"], tf.int32)
    model = GPT()
    loss = model.loss(model.logits(inputs, r.context), targets, r.context)
    trainable = r.graph.trainable_variables
    grads = mtf.gradients([loss], [v.outputs[0] for v in trainable])
    # A tiny ε: α's gradient at init is small where the mixer's maps start near 0.
    update = Adam(learning_rate=lr, epsilon=1e-20).apply_grads(grads, trainable)
    r.lower()
    before = {v.name: r.variable_value(v) for v in trainable}
    r.run(update)
    after = {v.name: r.variable_value(v) for v in trainable}
  alphas = [n for n in before if n.endswith("rezero_alpha")]
  assert len(alphas) == 2 * NUM_LAYERS
  for name in alphas:
    np.testing.assert_allclose(abs(after[name] - before[name]), k * lr, rtol=1e-3,
                               err_msg=name)
  for name in set(before) - set(alphas):
    assert np.abs(after[name] - before[name]).max() <= lr * 1.001, name
