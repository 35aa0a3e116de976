"""The causal decayed sum that linear attention and retention share, per head:

  o_i = Σ_{j≤i} γ^(i-j) (q_i · k_j) v_j  =  q_i · S_i,   S_i = γ S_{i-1} + k_i v_iᵀ

in three forms that give the same o (γ = 1 when log_gamma is None, else γ = exp(log_gamma)
with one value per head):

- parallel: (Q Kᵀ ⊙ D) V with D[i, j] = γ^(i-j) for j ≤ i, else 0: length² per head.
- chunkwise: the length split into chunks of C positions; within a chunk the parallel form
  (C² per chunk), across chunks the state S entering each chunk: memory length · C +
  (length / C) · d_head · d_value instead of length².
- recurrent: one position per step from S, for decoding (`step`, `state_before`).

q, k are [.., heads, length, d_head] and v is [.., heads, length, d_value]; the state S is
[.., heads, d_head, d_value].
"""
from mtf_compat import mtf, tf


def decay(log_gamma, distance, dtype):
  """γ^distance where distance ≥ 0, else exactly 0 (distance: int32 mtf tensor)."""
  visible = mtf.cast(mtf.greater_equal(distance, 0), dtype)
  if log_gamma is None:
    return visible
  # relu keeps exp from overflowing on the masked (negative) distances.
  powers = mtf.exp(log_gamma * mtf.relu(mtf.cast(distance, tf.float32)))
  return mtf.cast(powers, dtype) * visible


def parallel(q, k, v, log_gamma, context):
  """o = (Q Kᵀ ⊙ D) V over whole windows."""
  length, memory = context.length, context.memory_length
  k = mtf.replace_dimensions(k, length, memory)
  v = mtf.replace_dimensions(v, length, memory)
  d_head = q.shape.get_dim_by_name("d_head")
  a = mtf.einsum([q, k], reduced_dims=[d_head])
  a *= decay(log_gamma, context.distance(), a.dtype)
  return mtf.einsum([a, v], reduced_dims=[memory])


def chunkwise(q, k, v, log_gamma, context, chunk_size):
  """o over whole windows, chunk by chunk: for position t of chunk c,

    o = Σ_{u≤t} γ^(t-u) (q_t · k_u) v_u  +  γ^(t+1) q_t · S_c
    S_c = Σ_{c'<c} γ^(C(c-1-c')) Σ_u γ^(C-1-u) k_{c',u} v_{c',u}ᵀ

  (S_c: the state after the last position of chunk c - 1).
  """
  length = context.length
  if length.size % chunk_size:
    raise ValueError("chunk_size=%d does not divide the length %d"
                     % (chunk_size, length.size))
  mesh, dtype = q.mesh, q.dtype
  chunks = mtf.Dimension("chunks", length.size // chunk_size)
  earlier_chunks = mtf.Dimension("memory_chunks", chunks.size)
  chunk = mtf.Dimension("chunk", chunk_size)
  memory_chunk = mtf.Dimension("memory_chunk", chunk_size)
  d_head = q.shape.get_dim_by_name("d_head")
  q = mtf.replace_dimensions(q, length, [chunks, chunk])
  k = mtf.replace_dimensions(k, length, [chunks, memory_chunk])
  v = mtf.replace_dimensions(v, length, [chunks, memory_chunk])
  t = mtf.range(mesh, chunk, tf.int32)
  u = mtf.range(mesh, memory_chunk, tf.int32)
  out_shape = mtf.replace_dimensions(v.shape, memory_chunk, chunk)

  a = mtf.einsum([q, k], reduced_dims=[d_head]) * decay(log_gamma, t - u, dtype)
  within = mtf.einsum([a, v], output_shape=out_shape)

  kv = mtf.einsum([k * decay(log_gamma, (chunk_size - 1) - u, dtype), v],
                  reduced_dims=[memory_chunk])
  c = mtf.range(mesh, chunks, tf.int32)
  c_earlier = mtf.range(mesh, earlier_chunks, tf.int32)
  across = decay(log_gamma, chunk_size * (c - 1 - c_earlier), dtype)
  states = mtf.einsum([mtf.replace_dimensions(kv, chunks, earlier_chunks), across],
                      output_shape=kv.shape)
  from_state = mtf.einsum([q * decay(log_gamma, t + 1, dtype), states],
                          output_shape=out_shape)
  return mtf.replace_dimensions(within + from_state, [chunks, chunk], length)


def causal_sum(q, k, v, log_gamma, context, chunk_size=None):
  """o over whole windows: chunkwise when chunk_size is below the length, else parallel."""
  if chunk_size and chunk_size < context.length.size:
    return chunkwise(q, k, v, log_gamma, context, chunk_size)
  return parallel(q, k, v, log_gamma, context)


def state_before(first_step, k, v, log_gamma, context):
  """S after the positions j < first_step: Σ_{j<P} γ^(P-1-j) k_j v_jᵀ."""
  length = context.length
  j = mtf.range(k.mesh, length, tf.int32)
  weights = decay(log_gamma, (first_step - 1) - j, k.dtype)
  return mtf.einsum([k * weights, v], reduced_dims=[length])


def step(state, q, k, v, log_gamma):
  """One position (q, k, v without length): S ← γ S + k vᵀ, o = q · S. Returns (o, S)."""
  if log_gamma is not None:
    state *= mtf.cast(mtf.exp(log_gamma), state.dtype)
  state += mtf.einsum([k, v], output_shape=state.shape)
  d_head = q.shape.get_dim_by_name("d_head")
  return mtf.einsum([q, state], reduced_dims=[d_head]), state


def mix(q, k, v, log_gamma, context, chunk_size=None):
  """o in whichever form the context asks for: one recurrent step from the carried
  state when decoding, else the whole window (causal_sum), carrying the state of the
  positions before the first decoded one when this is a prefill."""
  if context.decoding:
    o, state = step(context.carried(), q, k, v, log_gamma)
    context.carry(state)
    return o
  o = causal_sum(q, k, v, log_gamma, context, chunk_size)
  if context.prefilling:
    context.carry(state_before(context.first_step, k, v, log_gamma, context))
  return o
