"""The mixture of experts against a sequential numpy reference of top-2 routing with
a capacity per expert; capacity, the balancing loss's known value, dropped bytes through
the residual, and equal losses on one device and on the dp2_ep2 layout."""
import gin
import numpy as np
import pytest

from layers import moe_feed_forward
from layers.context import EVAL, TRAIN
from layers.moe_feed_forward import MoEFeedForward
from layers.residual import Residual
from models.gpt import GPT
from mtf_compat import mtf, tf
from tests import numpy_reference as ref
from tests.models.test_gin_models import parse_model_file
from tests.mtf_testing import MtfRunner, rng
from trainer import config
from trainer.run import Run

BATCH, LENGTH, D_MODEL, EXPERTS, D_FF = 3, 8, 8, 4, 6
NAMES = ["batch", "length", "d_model"]


@pytest.fixture(autouse=True)
def clear_gin_config():
  yield
  gin.clear_config()


def moe_reference(x, v, capacity):
  """y, the balance term (before its weight) and kept [batch, length, 2], one request
  at a time: each sequence's positions in order, each position's first choice, then
  its second (they go to different experts). Expert e serves a request while it has
  served fewer than `capacity` of this sequence; otherwise the request is dropped.
  Gates: softmax of x W_router, the top two renormalised to sum to 1 (mtf's
  _top_2_gating); y = Σ over the served requests of gate · act(x W_in[e]) W_out[e]."""
  probs = ref.softmax(x @ v["router"])
  y = np.zeros_like(x)
  kept = np.zeros(x.shape[:2] + (2,), bool)
  first = np.zeros_like(probs)
  for b in range(x.shape[0]):
    served = np.zeros(probs.shape[-1], int)
    for i in range(x.shape[1]):
      p = probs[b, i]
      e1 = int(np.argmax(p))
      e2 = int(np.argmax(np.where(np.arange(len(p)) == e1, -1.0, p)))
      first[b, i, e1] = 1.0
      total = p[e1] + p[e2] + 1e-9
      for k, e in enumerate((e1, e2)):
        if served[e] < capacity:
          expert = ref.gelu(x[b, i] @ v["in"][e]) @ v["out"][e]
          y[b, i] += p[e] / total * expert
          kept[b, i, k] = True
        served[e] += 1
  density, proxy = first.mean(axis=1), probs.mean(axis=1)
  balance = (density * proxy).mean() * probs.shape[-1] ** 2
  return y, balance, kept


class Built:
  """MoEFeedForward (optionally in a pre-norm residual) on a fed x, in one graph, with
  every variable set to N(0, 0.5²) so the router's choices are sharp."""

  def __init__(self, layer, mode=TRAIN, residual=False, seed=0):
    self.graph = tf.Graph()
    with self.graph.as_default():
      r = self.runner = MtfRunner(mode=mode, batch=BATCH, length=LENGTH,
                                  d_model=D_MODEL)
      self.x = tf.placeholder(tf.float32, [BATCH, LENGTH, D_MODEL])
      x = mtf.import_tf_tensor(r.mesh, self.x, mtf.Shape(r.dims(NAMES)))
      if residual:
        y = Residual()(x, layer, r.context, "channel_mixing")
      else:
        y = layer(x, r.context)
      losses = list(r.context.losses)
      r.lower()
      self.variables = list(r.graph.trainable_variables)
      assigns = [tf.assign(v.get_master(), np.float32(
          0.5 * rng(seed + 10 + i).randn(*v.shape.to_integer_list)))
                 for i, v in enumerate(self.variables)]
      r.session.run(assigns)
      r.session.run(r.lowering.copy_masters_to_slices())
      self.fetches = {"y": r.tf_tensor(y), "losses": [r.tf_tensor(l) for l in losses]}

  def run(self, x):
    return self.runner.session.run(self.fetches, {self.x: x})

  def values(self):
    return {v.name.split("/")[-1]: self.runner.variable_value(v) for v in self.variables}

  def assign(self, name, value):
    with self.graph.as_default():
      [v] = [v for v in self.variables if v.name.split("/")[-1] == name]
      self.runner.session.run(tf.assign(v.get_master(), np.float32(value)))
      self.runner.session.run(self.runner.lowering.copy_masters_to_slices())


def random_x(seed=0):
  return rng(seed).randn(BATCH, LENGTH, D_MODEL).astype(np.float32)


@pytest.mark.parametrize("mode,capacity", [(TRAIN, 2), (EVAL, 4)])
def test_moe_matches_a_sequential_numpy_reference_of_top_2_routing_with_capacity(
    mode, capacity):
  """Train uses capacity_factor (1.0: C = ⌊8·1/4⌋ = 2), everything else
  eval_capacity_factor (2.0: C = 4); both drop some requests and keep others."""
  layer = MoEFeedForward(num_experts=EXPERTS, d_ff=D_FF, capacity_factor=1.0,
                         eval_capacity_factor=2.0, balance_loss=0.01)
  built = Built(layer, mode)
  x = random_x()
  out = built.run(x)
  y, balance, kept = moe_reference(x, built.values(), capacity)
  assert 0 < kept.sum() < kept.size  # some requests dropped, some served
  np.testing.assert_allclose(out["y"], y, rtol=1e-4, atol=1e-5)
  if mode == TRAIN:
    [loss] = out["losses"]
    np.testing.assert_allclose(loss, 0.01 * balance, rtol=1e-5)
  else:  # the balance loss is a training term
    assert out["losses"] == []


def test_routing_never_gives_an_expert_more_than_its_capacity():
  """dispatch [batch, length, experts, expert_capacity]: every slot holds at most one
  request, each request at most one slot, and expert e serves exactly the first
  min(requests to e, C) requests of each sequence, in position order."""
  capacity = 3
  logits = rng(4).randn(BATCH, 4 * LENGTH, EXPERTS) * 3.0
  layer = MoEFeedForward(num_experts=EXPERTS, capacity_factor=capacity * EXPERTS
                         / (4 * LENGTH))
  with tf.Graph().as_default():
    r = MtfRunner(batch=BATCH, length=4 * LENGTH)
    experts = mtf.Dimension("experts", EXPERTS)
    probs, gates, first, requests = moe_feed_forward.route(
        r.constant(logits, ["batch", "length", experts]), experts)
    dispatch, combine = layer.assign(requests, gates, tf.float32, r.context)
    assert dispatch.shape.get_dim_by_name("expert_capacity").size == capacity
    dispatch, combine, requests, gates = r.run([dispatch, combine, requests, gates])
  assert set(np.unique(dispatch)) <= {0.0, 1.0}
  assert dispatch.sum(axis=1).max() == 1.0       # one request per slot
  assert dispatch.sum(axis=-1).max() == 1.0      # one slot per request
  served = dispatch.sum(axis=-1)                 # [batch, length, experts]
  assert served.sum(axis=1).max() == capacity     # no expert beyond C...
  earlier = np.cumsum(requests, axis=1) - requests
  np.testing.assert_array_equal(served, requests * (earlier < capacity))  # ...first C
  # Two requests per position, to the two largest logits.
  np.testing.assert_array_equal(requests.sum(-1), 2.0)
  top_two = np.argsort(logits, axis=-1)[..., -2:]
  np.testing.assert_array_equal(np.sort(np.argsort(requests, axis=-1)[..., -2:], -1),
                                np.sort(top_two, -1))
  np.testing.assert_allclose(combine, dispatch * gates[..., None], rtol=1e-6)


def test_balance_loss_is_its_weight_for_uniform_router_logits():
  """With x W_router = 0 every probability is 1/E, so proxy[s, e] = 1/E and, whatever
  expert wins the tie, Σ_e density[s, e] = 1:

    E² · mean over (s, e) of density · proxy = E² · (1/E) · Σ_e density / E = 1,

  the loss's value for perfectly balanced routing too (Shazeer et al. 2017's 'known
  value'); the layer adds weight · 1."""
  weight = 0.03
  built = Built(MoEFeedForward(num_experts=EXPERTS, d_ff=D_FF, balance_loss=weight))
  built.assign("router", np.zeros([D_MODEL, EXPERTS]))
  [loss] = built.run(random_x())["losses"]
  np.testing.assert_allclose(loss, weight * 1.0, rtol=1e-6)
  # Not a constant: a router that prefers one expert for every byte gives E · weight.
  router = np.zeros([D_MODEL, EXPERTS])
  x = np.abs(random_x()) + 1.0
  router[:, 1] = 5.0
  built.assign("router", router)
  [loss] = built.run(x)["losses"]
  np.testing.assert_allclose(loss, weight * EXPERTS, rtol=1e-3)


def test_a_byte_both_experts_drop_passes_through_the_residual_unchanged():
  """Capacity 1 (C = ⌊8 · 0.5 / 4⌋): later bytes whose two experts are both taken get
  no expert output, so the pre-norm residual x + MoE(norm(x)) returns x itself."""
  layer = MoEFeedForward(num_experts=EXPERTS, d_ff=D_FF, capacity_factor=0.5)
  built = Built(layer, residual=True)
  x = random_x(1)
  y = built.run(x)["y"]
  v = built.values()
  normed = ref.layer_norm(x, v["scale"], v["bias"])
  _, _, kept = moe_reference(normed, v, capacity=1)
  dropped = ~kept.any(axis=-1)
  assert dropped.sum() >= 3 and (~dropped).sum() >= 3
  np.testing.assert_array_equal(y[dropped], x[dropped])
  assert np.all(np.abs(y[~dropped] - x[~dropped]).max(axis=-1) > 1e-3)


def dp2_ep2():
  """The (mesh_shape, layout_rules) of gin/layouts/dp2_ep2.gin."""
  config.parse(["gin/layouts/dp2_ep2.gin"], [])
  settings = Run()
  gin.clear_config()
  return settings.mesh_shape, settings.layout_rules


def optimised_loss_and_gradients(mesh_shape, layout):
  """transformer_moe.gin at width 32: cross-entropy + balance loss and its gradients."""
  parse_model_file("transformer_moe")
  gin.parse_config(["MoEFeedForward.capacity_factor = 1.0"])  # some bytes dropped
  tokens = rng(1).randint(0, 256, (4, LENGTH + 1))
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    r = MtfRunner(mesh_shape, layout, batch=4, length=LENGTH, d_model=32)
    inputs = r.constant(tokens[:, :-1], ["batch", "length"], tf.int32)
    targets = r.constant(tokens[:, 1:], ["batch", "length"], tf.int32)
    model = GPT()
    cross_entropy = model.loss(model.logits(inputs, r.context), targets, r.context)
    balance = model.added_loss(r.context)
    trainable = r.graph.trainable_variables
    grads = mtf.gradients([cross_entropy + balance], [v.outputs[0] for v in trainable])
    split = {d.name for op in r.graph.operations for t in op.outputs for d in t.shape.dims
             if r.layout.tensor_dimension_to_mesh_axis(d, r.mesh_shape) is not None}
    values = r.run([cross_entropy, balance] + grads)
  return values[0], values[1], dict(zip([v.name for v in trainable], values[2:])), split


def test_dp2_ep2_gives_the_losses_and_gradients_of_one_device():
  mesh_shape, layout = dp2_ep2()
  assert mesh_shape == "data:2,model:2" and "experts:model" in layout
  ce, balance, grads, _ = optimised_loss_and_gradients("", "")
  split_ce, split_balance, split_grads, split = optimised_loss_and_gradients(
      mesh_shape, layout)
  assert {"batch", "experts"} <= split  # the layout really splits the experts
  assert balance > 0  # the term is present (0.01 · E² · mean(density · proxy) a block)
  np.testing.assert_allclose(split_ce, ce, rtol=1e-5)
  np.testing.assert_allclose(split_balance, balance, rtol=1e-5)
  assert split_grads.keys() == grads.keys()
  for name, g in grads.items():
    np.testing.assert_allclose(split_grads[name], g, rtol=1e-4, atol=1e-7, err_msg=name)
