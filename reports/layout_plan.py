"""mtfzoo layout: the mesh shapes and layout rules that can lay out a config's training
step over N devices, and the bytes each device holds under each.

Candidates are the factorizations N = a·b as `data:a,model:b` (an axis of size 1 is left
out: `data:N`, `model:N`) with the project's standard rules, those of gin/layouts/:
`batch` over `data`, and `heads` (the seq² maps' heads axis too), `d_ff` and `vocab` over
`model`. Each candidate's training graph is built (trainer.model_summary.build_graphs:
layers read the layout to pick their communication) and checked against every tensor
(trainer.mesh.Layout.violations). When the only faults are model-axis rules (a
dimension `model` does not divide, or two dimensions of one tensor on `model`), the
rules without the faulty ones are tried (`fallback_rules`), so a model whose heads do
not divide the axis still gets its d_ff and vocab split.

Bytes per device of a valid candidate, a tensor counted by its slice under the layout
(each split dimension divided by its mesh axis; unsplit tensors whole on every device):

  parameters       Σ slices of the trainable variables · 4 (float32 masters' slices)
  gradients        Σ the same slices · 4: the float32 weight gradients, every one
                   alive at once because the global norm needs them all before any
                   update
  optimizer state  Σ slices of the optimizer's slot variables · 4
  activations      Σ slices of every tensor of one microbatch's forward pass · the
                   activation itemsize, as trainer.model_summary counts them: the
                   forward pass's tensors that the backward pass keeps (an upper bound:
                   some, such as the inputs of sums, are not needed)
  activation grad  the largest of those slices once more: the backward pass holds a
                   tensor's gradient beside the forward tensors it still needs

  total = parameters + gradients + optimizer state + activations + activation grad

On one device the parameters are model_summary's params·4, the optimizer state its
optimizer_state_bytes and the activations its activation_bytes. Not counted: master
copies on the host, the input pipeline, and TF's or XLA's scratch buffers.
"""
import dataclasses
import json
from typing import List, Optional

from mtf_compat import tf
from trainer import mesh
from trainer import model_summary
from trainer.errors import UserError

DATA_RULES = ("batch",)
MODEL_RULES = ("heads", "d_ff", "vocab")  # the standard rules of gin/layouts/
GB = 1e9  # --device_memory_gb is in 10^9 bytes, like the MB (10^6) of the table
MB = 1e6


@dataclasses.dataclass
class Candidate:
  """One mesh shape and its layout rules; bytes per device when the layout is valid."""
  mesh_shape: str
  layout_rules: str
  violations: list              # trainer.mesh.Violation: why it cannot ([]: it can)
  parameter_bytes: int = 0
  gradient_bytes: int = 0
  optimizer_state_bytes: int = 0
  activation_bytes: int = 0
  activation_gradient_bytes: int = 0
  fits: Optional[bool] = None   # total within --device_memory_gb (None: not asked)
  configured: bool = False      # the run's own run.mesh_shape / run.layout_rules

  @property
  def valid(self):
    return not self.violations

  @property
  def problems(self):
    return [v.message for v in self.violations]

  @property
  def total_bytes(self):
    return (self.parameter_bytes + self.gradient_bytes + self.optimizer_state_bytes
            + self.activation_bytes + self.activation_gradient_bytes)

  def record(self):
    """A JSON-ready dict: the fields, `problems` for `violations`, and the total."""
    record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
              if f.name != "violations"}
    if not self.valid:  # no bytes for a layout that cannot be built
      record.update({k: None for k in record if k.endswith("_bytes")})
    return dict(record, valid=self.valid, problems=self.problems,
                total_bytes=self.total_bytes if self.valid else None)


@dataclasses.dataclass
class Plan:
  """The candidates for one config and device count, as a table or JSON."""
  num_devices: int
  device_memory_gb: Optional[float]
  settings: object
  candidates: List[Candidate]

  def table(self):
    """The candidates as a fixed-width table, bytes per device in MB."""
    s = self.settings
    lines = ["layout plan for %d device%s: batch %d, context %d, %s activations%s; "
             "bytes per device in MB (10^6)" % (
                 self.num_devices, "" if self.num_devices == 1 else "s", s.batch_size,
                 s.sequence_length, s.activation_dtype,
                 ", %d microbatches" % s.microbatches if s.microbatches > 1 else "")]
    header = ("mesh", "layout rules", "params", "grads", "optimizer", "activations",
              "act. grad", "total", "status")
    rows = [header] + [self._row(c) for c in self.candidates]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for r in rows:
      cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
      cells += [r[i].rjust(widths[i]) for i in range(2, len(widths))]
      lines.append("  ".join(cells + [r[-1]]).rstrip())
    lines.append("activations: one microbatch's forward tensors, kept for the backward "
                 "pass; act. grad: the gradient of the largest; grads: float32 weight "
                 "gradients")
    return "\n".join(lines)

  def _row(self, c):
    if not c.valid:
      numbers = ["-"] * 6
      status = "invalid: " + "; ".join(p[len("layout: "):] if p.startswith("layout: ")
                                       else p for p in c.problems)
    else:
      numbers = ["%.1f" % (b / MB) for b in (
          c.parameter_bytes, c.gradient_bytes, c.optimizer_state_bytes,
          c.activation_bytes, c.activation_gradient_bytes, c.total_bytes)]
      status = "ok" if c.fits in (None, True) else (
          "does not fit in %g GB" % self.device_memory_gb)
    if c.configured:
      status += " (configured)"
    return (c.mesh_shape or "(one device)", c.layout_rules or "-", *numbers, status)

  def write_json(self, path):
    with tf.io.gfile.GFile(path, "w") as f:
      json.dump({"devices": self.num_devices,
                 "device_memory_gb": self.device_memory_gb,
                 "candidates": [c.record() for c in self.candidates]}, f, indent=1)


def meshes(num_devices):
  """(data, model) sizes with data·model = num_devices, the most data-parallel first."""
  return [(d, num_devices // d) for d in range(num_devices, 0, -1)
          if num_devices % d == 0]


def mesh_string(data, model):
  return ",".join("%s:%d" % (name, size) for name, size in
                  (("data", data), ("model", model)) if size > 1)


def rules_string(data, model_rules):
  return ",".join(["%s:data" % d for d in DATA_RULES if data > 1]
                  + ["%s:model" % d for d in model_rules])


def measure(settings, mesh_shape, layout_rules):
  """The Candidate for one layout: its violations, or its bytes per device."""
  settings = dataclasses.replace(settings, mesh_shape=mesh_shape,
                                 layout_rules=layout_rules)
  layout = settings.layout
  graphs = model_summary.build_graphs(settings)
  candidate = Candidate(mesh_shape, layout_rules, layout.violations(graphs.training))
  if not candidate.valid:
    return candidate

  def slice_bytes(variables):
    return sum(layout.slice_size(v.shape) * v.slice_dtype.size for v in variables)

  variables = graphs.training.trainable_variables
  itemsize = model_summary.activation_itemsize(settings)
  forward = [layout.slice_size(t.shape) * itemsize
             for t in model_summary.forward_tensors(graphs)]
  candidate.parameter_bytes = slice_bytes(variables)
  candidate.gradient_bytes = sum(layout.slice_size(v.shape) * 4 for v in variables)
  candidate.optimizer_state_bytes = slice_bytes(graphs.optimizer.slot_variables)
  candidate.activation_bytes = sum(forward)
  candidate.activation_gradient_bytes = max(forward, default=0)
  return candidate


def fallback_rules(model_rules, violations):
  """The model-axis rule sets to try after `model_rules` failed with `violations`.

  A dimension the axis does not divide can never stay on it, so all such dimensions go
  at once; two dimensions of one tensor on the axis give two sets, each without one of
  them. None when a fault is not a model rule's (a batch the data axis does not
  divide): no set of model rules fixes that.
  """
  if not all(set(v.dims) & set(model_rules) for v in violations):
    return []
  indivisible = {d for v in violations if len(v.dims) == 1 for d in v.dims}
  kept = tuple(r for r in model_rules if r not in indivisible)
  conflicts = [v.dims for v in violations if len(v.dims) > 1
               and set(v.dims) <= set(kept)]
  if not conflicts:
    options = [kept]
  else:  # the first conflict; the next ones are met by the sets it leads to
    options = [tuple(r for r in kept if r != d) for d in conflicts[0]]
  return [o for o in options if o]


def mesh_candidates(settings, data, model):
  """The standard rules on a data x model mesh, then the fallback_rules of each failed
  set in turn (each rule set measured once)."""
  mesh_shape = mesh_string(data, model)
  pending, seen, found = [MODEL_RULES if model > 1 else ()], set(), []
  while pending:
    model_rules = pending.pop(0)
    if model_rules in seen:
      continue
    seen.add(model_rules)
    candidate = measure(settings, mesh_shape, rules_string(data, model_rules))
    found.append(candidate)
    pending += fallback_rules(model_rules, candidate.violations)
  return found


def same_layout(a, b):
  return (a.shape == b.shape
          and a.rules._pairs == b.rules._pairs)  # pylint: disable=protected-access


def is_configured(candidate, settings):
  """Whether the candidate is the run's own layout (however its strings are ordered)."""
  return same_layout(mesh.parse(candidate.mesh_shape, candidate.layout_rules),
                     settings.layout)


def plan(settings, num_devices, device_memory_gb=None):
  """Every candidate layout of the config over num_devices (see the module docstring);
  the run's own layout is marked, and added when it has num_devices devices but is not
  a standard candidate."""
  if not isinstance(num_devices, int) or num_devices < 1:
    raise UserError("--devices must be a positive number of devices, got %r"
                    % num_devices)
  if device_memory_gb is not None and not device_memory_gb > 0:
    raise UserError("--device_memory_gb must be > 0, got %r" % device_memory_gb)
  candidates = []
  for data, model in meshes(num_devices):
    candidates += mesh_candidates(settings, data, model)
  for c in candidates:
    c.configured = is_configured(c, settings)
  if (settings.layout.num_devices == num_devices
      and not any(c.configured for c in candidates)):
    own = measure(settings, settings.mesh_shape, settings.layout_rules)
    own.configured = True
    candidates.insert(0, own)
  for c in candidates:
    if c.valid and device_memory_gb is not None:
      c.fits = c.total_bytes <= device_memory_gb * GB
  return Plan(num_devices, device_memory_gb, settings, candidates)
