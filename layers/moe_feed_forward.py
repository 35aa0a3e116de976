"""Channel mixer: a mixture of experts with top-2 routing and a capacity per expert."""
import gin

from layers import variables
from layers.feed_forward import activation
from mtf_compat import mtf, tf

TOP_K = 2  # experts each byte is routed to
# The variable scope of the routing bookkeeping (positions in the experts, dispatch and
# combine): gathers and scatters written as matmuls, which reports/bench.py does not
# count as model arithmetic.
ROUTING = "routing"


def capacity(length, num_experts, capacity_factor):
  """C = min(L, ⌊L · capacity_factor / E⌋) slots per expert for each sequence (at least 1):
  mtf's expert_capacity with a sequence as the group. Top-2 routing makes 2L requests,
  so capacity_factor 2 is the average load (GShard's 2N/E)."""
  return min(length, max(1, int(length * capacity_factor / num_experts)))


def route(router_logits, experts):
  """(probs, gates, first, requests), float32 [.., experts]: softmax of the logits; g1
  at e1 and g2 at e2 (renormalised) and 0 elsewhere; the one-hot of e1; the one-hots of
  e1 and e2."""
  probs = mtf.softmax(router_logits, experts)
  gate_1, index_1 = mtf.top_1(probs, experts)
  first = mtf.one_hot(index_1, experts, dtype=tf.float32)
  gate_2, index_2 = mtf.top_1(probs * (1.0 - first), experts)
  second = mtf.one_hot(index_2, experts, dtype=tf.float32)
  gates = (first * gate_1 + second * gate_2) / (gate_1 + gate_2 + 1e-9)
  return probs, gates, first, first + second


def balance(probs, first, length):
  """E² · mean over (sequence, expert) of density · proxy, before capacity: density
  the fraction of the sequence's positions whose first choice is the expert, proxy
  their mean router probability for it (mtf's top-2 load-balancing loss)."""
  experts = first.shape.get_dim_by_name("experts")
  density = mtf.reduce_mean(first, reduced_dim=length)
  proxy = mtf.reduce_mean(probs, reduced_dim=length)
  return mtf.reduce_mean(density * proxy) * float(experts.size ** 2)


@gin.configurable
class MoEFeedForward:
  """A feed-forward layer of E experts, each byte sent to its top 2 (Shazeer et al.
  2017; Lepikhin et al. 2020, GShard; mtf's transformer/moe.py `_top_2_gating`).

    g = softmax(x W_router) over experts;  e1 = argmax g,  e2 = argmax of g without e1
    (g1, g2) = (g[e1], g[e2]) / (g[e1] + g[e2] + 1e-9)            (renormalised, as mtf)
    y = g1 · keep1 · FF_e1(x) + g2 · keep2 · FF_e2(x),   FF_e(x) = act(x W_in[e]) W_out[e]

  Capacity: expert e takes C = capacity(L, E, factor) requests per sequence, in position
  order (at a position, its two requests go to different experts); keep_k = 1 when
  fewer than C earlier requests of the sequence went to e_k, else 0. A byte dropped by
  both experts gets y = 0, so the residual carries it unchanged. mtf instead queues all
  first choices of a group before its second choices, which lets a later byte's first
  choice take an earlier byte's slot: in position order a byte's output depends only
  on the bytes before it (causal, and decodable one byte at a time from per-expert
  counts). Every second choice is used (mtf's second_policy 'all'; no random dropping).

  Load-balancing loss (train only), per sequence s and expert e, before capacity:
    density[s, e] = mean over positions of [e1 = e],  proxy[s, e] = mean of g[e]
                                                   (g: the softmax, before top-2)
    balance = balance_loss · E² · mean over (s, e) of density · proxy
  It is 1 · balance_loss for uniform router logits (proxy = 1/E, Σ_e density = 1) and
  for perfectly balanced routing; it is added through `context.add_loss`.

  num_experts: E; d_ff: each expert's hidden width (None: 4 · d_model);
  capacity_factor when training, eval_capacity_factor otherwise (eval, sampling).
  Dimensions: `experts` (a layout may split it: expert parallelism), `expert_capacity`,
  `d_ff`; the router works in float32, as mtf's.
  """

  def __init__(self, num_experts=4, d_ff=None, capacity_factor=2.0,
               eval_capacity_factor=2.0, balance_loss=0.01, activation="gelu"):
    self.num_experts = num_experts
    self.d_ff = d_ff
    self.capacity_factor = capacity_factor
    self.eval_capacity_factor = eval_capacity_factor
    self.balance_loss = balance_loss
    self.activation = activation

  def __call__(self, x, context):
    act = activation(self.activation, context)
    d_model = x.shape.get_dim_by_name("d_model")
    experts = mtf.Dimension("experts", self.num_experts)
    d_ff = mtf.Dimension("d_ff", self.d_ff or 4 * d_model.size)
    router = variables.weight(context, "router", [d_model, experts], ["d_model"])
    w_in = variables.weight(context, "in", [experts, d_model, d_ff], ["d_model"])
    w_out = variables.weight(context, "out", [experts, d_ff, d_model], ["d_ff"],
                             output_projection=True)
    router_logits = mtf.einsum([mtf.to_float(x), mtf.to_float(router)],
                               reduced_dims=[d_model])
    with tf.variable_scope(ROUTING):
      probs, gates, first, requests = route(router_logits, experts)
    if context.decoding:
      return self.decode_step(x, gates, requests, w_in, w_out, act, context)
    if context.train:
      context.add_loss(self.balance_loss * balance(probs, first, context.length))
    with tf.variable_scope(ROUTING):
      dispatch, combine = self.assign(requests, gates, x.dtype, context)
      expert_capacity = dispatch.shape.get_dim_by_name("expert_capacity")
      batch = x.shape.get_dim_by_name("batch")
      expert_inputs = mtf.einsum(
          [x, dispatch], output_shape=[experts, batch, expert_capacity, d_model])
    h = act(mtf.einsum([expert_inputs, w_in], reduced_dims=[d_model]))
    expert_outputs = mtf.einsum([h, w_out], reduced_dims=[d_ff])
    with tf.variable_scope(ROUTING):
      return mtf.einsum([expert_outputs, combine], output_shape=x.shape)

  def capacity(self, context):
    factor = self.capacity_factor if context.train else self.eval_capacity_factor
    return capacity(context.length.size, self.num_experts, factor)

  def assign(self, requests, gates, dtype, context):
    """(dispatch, combine) [batch, length, experts, expert_capacity]: 1, and the gate,
    at the slot each kept request takes in its expert."""
    length = context.length
    # A request's slot: the requests to its expert from earlier positions.
    slot = mtf.cumsum(requests, length, exclusive=True)
    if context.prefilling:
      before = mtf.cast(mtf.less(mtf.range(requests.mesh, length, tf.int32),
                                 context.first_step), tf.float32)
      context.carry(mtf.einsum([requests, before], reduced_dims=[length]))
    c = self.capacity(context)
    kept = requests * mtf.to_float(mtf.less(slot, float(c)))
    expert_capacity = mtf.Dimension("expert_capacity", c)
    dispatch = kept * mtf.one_hot(mtf.to_int32(slot), expert_capacity, dtype=tf.float32)
    return mtf.cast(dispatch, dtype), mtf.cast(dispatch * gates, dtype)

  def decode_step(self, x, gates, requests, w_in, w_out, act, context):
    """One position per row: every expert runs on it and the kept ones are combined;
    the per-expert request counts of the earlier positions are the carried state."""
    counts = context.carried()
    kept = requests * mtf.to_float(mtf.less(counts, float(self.capacity(context))))
    context.carry(counts + requests)
    d_model = x.shape.get_dim_by_name("d_model")
    d_ff = w_in.shape.get_dim_by_name("d_ff")
    h = act(mtf.einsum([x, w_in], reduced_dims=[d_model]))
    outputs = mtf.einsum([h, w_out], reduced_dims=[d_ff])
    return mtf.einsum([outputs, mtf.cast(kept * gates, x.dtype)], output_shape=x.shape)
