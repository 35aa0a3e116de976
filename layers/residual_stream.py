"""Reversible residual streams: the blocks' inputs are recomputed from their outputs in
the backward pass, so training keeps the activations of the last block only.

Each stream runs a list of residual branches f_k (a block's token-mixing branch, then its
channel-mixing branch: `Residual.branch`, the norm and ReZero's α inside f_k) in order.

With `invert=True` every branch is an mtf custom-gradient operation whose gradient
inverts the branch: the input it needs is rebuilt from the output, which the next
branch's gradient rebuilt before it (the last branch reads its stored output). The
rebuilt values travel backwards as the "gradients" of pass-through outputs, as in
mesh-tf's `reversible_half_residual_and_swap`. With `invert=False` the same forward is
left to plain autodiff, which keeps every activation.
"""
import functools

from mtf_compat import mtf

STREAMS = ("standard", "revnet", "momentum")


def revnet(x, branches, invert=True):
  """RevNet (Gomez et al. 2017) in Reformer's form (Kitaev et al. 2020):

    x1 = x2 = x;   for each pair (F, G) of consecutive branches:
      y1 = x1 + F(x2),  y2 = x2 + G(y1)           (inverse: x2 = y2 − G(y1),
    output (x1 + x2) / 2                                     x1 = y1 − F(x2))

  Each branch is one mesh-tf half residual x1 + f(x2) followed by a swap of the streams,
  so a block (F, G) of two branches is one RevNet coupling, and blocks of one branch
  (gMLP) couple with the next block's.
  """
  x1, x1_rebuilt, x2, x2_rebuilt = x, None, x, None
  for branch in branches:
    x1, x1_rebuilt, x2, x2_rebuilt = mtf.layers.reversible_half_residual_and_swap(
        x1, x1_rebuilt, x2, x2_rebuilt, branch, recompute_grads=invert)
  return (x1 + x2) * 0.5


def momentum(x, branches, gamma, invert=True):
  """MomentumNet (Sander et al. 2021): v_0 = 0, then for each branch f

    v ← γ·v + (1 − γ)·f(x),  x ← x + v           (inverse: x ← x − v,
    output x                                      v ← (v − (1 − γ)·f(x)) / γ)

  The inverse divides by γ once per branch, so rounding errors in the rebuilt inputs
  grow like γ^−(branches) with depth (float32 keeps them far below the gradients' own).
  """
  v = mtf.zeros_like(x)
  x_rebuilt = v_rebuilt = None
  for branch in branches:
    if not invert:
      x, _, v, _ = _momentum_step(x, None, v, None, branch, gamma, [])
      continue
    x_rebuilt = x_rebuilt if x_rebuilt is not None else mtf.zeros_like(x)
    v_rebuilt = v_rebuilt if v_rebuilt is not None else mtf.zeros_like(x)
    branch_output = []  # f(x) of the forward pass: the backward pass clones up to it
    x, x_rebuilt, v, v_rebuilt = mtf.custom_gradient(
        functools.partial(_momentum_step, f=branch, gamma=gamma,
                          branch_output=branch_output),
        functools.partial(_momentum_step_grad, gamma=gamma,
                          branch_output=branch_output),
        [x, x_rebuilt, v, v_rebuilt])
  return x


def _momentum_step(x, x_rebuilt, v, v_rebuilt, f, gamma, branch_output):
  fx = f(x)
  branch_output.append(fx)
  v = v * gamma + fx * (1.0 - gamma)
  return x + v, x_rebuilt, v, v_rebuilt


def _momentum_step_grad(explicit_inputs, all_inputs, forward_operations, outputs,
                        output_grads, gamma, branch_output):
  """Gradients of one momentum step, rebuilding its inputs from its outputs.

  With g = ∂L/∂x_out + ∂L/∂v_out (x_out = x + v_out):
    ∂L/∂x = ∂L/∂x_out + (1 − γ)·J_f(x)ᵀ g,  ∂L/∂v = γ·g,  ∂L/∂θ_f = (1 − γ)·J_θᵀ g.
  """
  x, _, _, _ = explicit_inputs
  extra_inputs = all_inputs[len(explicit_inputs):]
  x_out, _, v_out, _ = outputs
  dx_out, x_out_rebuilt, dv_out, v_out_rebuilt = output_grads
  if x_out_rebuilt is not None:  # the next step rebuilt them: the stored ones are freed
    x_out, v_out = x_out_rebuilt, v_out_rebuilt
  x_in = x_out - v_out
  fx = branch_output[0]
  f_ops = forward_operations[:forward_operations.index(fx.operation) + 1]
  f_again_ops, mapping = x.graph.clone_operations(f_ops, {x: x_in})
  fx_again = mapping[fx]
  v_in = (v_out - fx_again * (1.0 - gamma)) * (1.0 / gamma)
  g = dx_out if dv_out is None else dx_out + dv_out
  grads = mtf.gradients(ys=[fx_again], xs=[x_in] + extra_inputs,
                        grad_ys=[g * (1.0 - gamma)], operations=f_again_ops)
  dx = dx_out + grads[0]
  return [dx, x_in, g * gamma, v_in] + grads[1:]
