"""Properties every token mixer (and the group feed-forward) must have."""
import numpy as np
import pytest

from layers import variables
from layers.container import Container
from layers.gmlp import GMLP
from layers.group_feed_forward import GroupFeedForward
from layers.hyena import Hyena
from layers.linear_attention import LinearAttention
from layers.local_attention import LocalAttention
from layers.mixer import MLPMixer
from layers.retention import Retention
from layers.shared_map import SharedMap
from layers.short_conv import ShortConvThen
from layers.synthesizer import Synthesizer
from tests.layers.layer_testing import LayerUnderTest, random_input
from tests.mtf_testing import rng

MIXERS = {
    "shared_map": lambda: SharedMap(form="mixer"),
    "shared_map_softmax": lambda: SharedMap(form="softmax"),
    "mlp_mixer": lambda: MLPMixer(heads=1),
    "mlp_mixer_heads": lambda: MLPMixer(heads=4),
    "gmlp": lambda: GMLP(),
    "gmlp_tanh_unsplit": lambda: GMLP(split=False, gate="tanh"),
    "gmlp_sigmoid": lambda: GMLP(gate="sigmoid"),
    "synthesizer_dense": lambda: Synthesizer(kind="dense", heads=2),
    "synthesizer_random": lambda: Synthesizer(kind="random", heads=2),
    "container": lambda: Container(heads=2),
    "group_feed_forward": lambda: GroupFeedForward(heads=2, glu=True),
    "linear_attention": lambda: LinearAttention(heads=2, chunk_size=None),
    "linear_attention_chunkwise": lambda: LinearAttention(heads=2, chunk_size=2),
    "retention": lambda: Retention(heads=2),
    "local_attention": lambda: LocalAttention(heads=2, window=LENGTH),
    "local_attention_blocked": lambda: LocalAttention(heads=2, window=2),
    "hyena": lambda: Hyena(filter_width=8, bands=3),
    "retention_chunkwise": lambda: Retention(heads=2, chunk_size=2),
    "retention_after_short_conv": lambda: ShortConvThen(Retention(heads=2), taps=3),
}
LENGTH = 8
FFT_MIXERS = {"hyena"}  # convolutions by FFT mix every position's rounding


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_mixer_output_ignores_future_positions(name):
  layer = LayerUnderTest(MIXERS[name](), length=LENGTH)
  layer.randomize()
  x = random_input(length=LENGTH)
  y = layer.y(x)
  for i in (0, 3, 6):
    perturbed = x.copy()
    perturbed[:, i + 1:] += 10.0 * rng(i).randn(*perturbed[:, i + 1:].shape)
    y_perturbed = layer.y(perturbed)
    if name in FFT_MIXERS:  # causal up to float32 rounding of the output's scale
      np.testing.assert_allclose(y_perturbed[:, :i + 1], y[:, :i + 1], rtol=0,
                                 atol=1e-5 * np.abs(y_perturbed).max())
    else:
      np.testing.assert_array_equal(y[:, :i + 1], y_perturbed[:, :i + 1])
    assert not np.allclose(y[:, i + 1:], y_perturbed[:, i + 1:])


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_gradients_reach_every_variable_but_no_masked_map_entry(name):
  layer = LayerUnderTest(MIXERS[name](), length=LENGTH)
  gradients = layer.gradients(random_input(length=LENGTH))
  records, shapes = layer.records(), layer.shapes()
  for var, g in gradients.items():
    assert np.any(g != 0), "%s gets no gradient" % var
    if records[var].role != variables.SEQ_MAP:
      continue
    names = shapes[var].dimension_names
    i, j = np.indices(g.shape)[[names.index("length"), names.index("memory_length")]]
    np.testing.assert_array_equal(g[j > i], 0.0)
    # Softmax maps are shift-invariant per row, so row 0 (one entry) may get none.
    assert np.all(g[(j <= i) & (i > 0)] != 0), "%s: a visible entry has none" % var


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_every_variable_records_its_role_and_fan_in_dims(name):
  layer = LayerUnderTest(MIXERS[name]())
  for var, record in layer.records().items():
    names = layer.shapes()[var].dimension_names
    if record.role == variables.SEQ_MAP:
      assert names[-2:] == ["length", "memory_length"], var
      assert record.fan_in_dims == ("memory_length",), var
    elif record.role == variables.WEIGHT:
      assert record.fan_in_dims and set(record.fan_in_dims) < set(names), var
    else:
      assert record.role in (variables.NORM, variables.BIAS, variables.REZERO), var
      assert record.fan_in_dims == (), var
