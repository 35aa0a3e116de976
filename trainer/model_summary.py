"""What a config builds, measured on its mtf graph without running it: parameters by
role, seq x seq map sizes, activation and optimizer-state memory."""
import collections
import dataclasses
from typing import NamedTuple

from layers import variables as variables_lib
from layers.context import TRAIN
from mtf_compat import mtf, tf
from trainer.model_fn import build_model, train_graph

LARGEST = 5  # activations listed by size


@dataclasses.dataclass
class Summary:
  params: int
  params_by_role: dict
  variable_shapes: dict       # master variable name -> shape (for checkpoint checks)
  seq_maps: list              # (name, shape) of the learned seq x seq maps
  attention_map_elements: int  # batch·heads·length² per attention-like layer
  activation_bytes: int       # every forward tensor of one step, summed
  kept_activation_bytes: int  # the forward tensors the backward pass reads, summed
  largest_activations: list   # (name, shape, bytes) of the largest forward tensors
  optimizer_state_bytes: int
  num_layers: int
  d_model: int
  heads: int

  def lines(self):
    out = ["parameters: %s" % f"{self.params:,}"]
    for role, n in sorted(self.params_by_role.items(), key=lambda kv: -kv[1]):
      out.append("  %-10s %s" % (role, f"{n:,}"))
    if self.seq_maps:
      shapes = collections.Counter(str(s) for _, s in self.seq_maps)
      out.append("seq x seq maps: " + ", ".join("%d x %s" % (n, s)
                                                for s, n in shapes.items()))
    if self.attention_map_elements:
      out.append("attention maps: %s elements per layer (batch·heads·length²)"
                 % f"{self.attention_map_elements:,}")
    out.append("activation memory per step: %.1f MB, %.1f MB kept for the backward pass"
               % (self.activation_bytes / 1e6, self.kept_activation_bytes / 1e6))
    out.append("optimizer state: %.1f MB" % (self.optimizer_state_bytes / 1e6))
    return out


class Graphs(NamedTuple):
  """The mtf graphs of one config, built but not lowered."""
  forward: mtf.Graph    # one microbatch's loss, then its gradients
  forward_op_count: int  # the loss's operations come first: activation memory counts them
  training: mtf.Graph   # the whole step: loss, gradients, clipping, update
  model: object
  optimizer: object     # its slot variables are the optimizer state


def build_graphs(settings):
  """Builds both graphs in scratch tf.Graphs, under the settings' layout (layers read it
  to choose their communication), without validating it."""
  forward, forward_op_count, _ = forward_graph(settings)
  with tf.Graph().as_default():
    graph = mtf.Graph()
    mesh = mtf.Mesh(graph, "mesh")
    model, context, token_shape = build_model(settings, mesh, TRAIN,
                                              settings.batch_size)
    tokens = mtf.zeros(mesh, token_shape, tf.int32)
    global_step = tf.train.get_or_create_global_step()
    *_, optimizer = train_graph(settings, model, context, tokens, tokens, global_step)
  return Graphs(forward, forward_op_count, graph, model, optimizer)


def forward_graph(settings):
  """One microbatch's loss and then its gradients, in a scratch tf.Graph: (mtf graph,
  number of the loss's operations, which come first, model)."""
  with tf.Graph().as_default():
    forward = mtf.Graph()
    mesh = mtf.Mesh(forward, "mesh")
    model, context, token_shape = build_model(
        settings, mesh, TRAIN, settings.batch_size // settings.microbatches)
    tokens = mtf.zeros(mesh, token_shape, tf.int32)
    loss = model.loss(model.logits(tokens, context), tokens, context)
    forward_op_count = len(forward.operations)
    mtf.gradients([loss], [v.outputs[0] for v in forward.trainable_variables])
  return forward, forward_op_count, model


def forward_tensors(graphs):
  """Every tensor of one microbatch's forward pass: what activation memory counts."""
  return [t for op in graphs.forward.operations[:graphs.forward_op_count]
          for t in op.outputs]


def kept_tensors(graphs):
  """The forward tensors (variables aside) that the backward pass reads: what training
  must keep alive from the forward pass until the gradients that need them.

  Every other forward tensor can be freed once the forward operations that read it have
  run; recomputed blocks keep their inputs, reversible streams the last block's outputs.
  """
  operations = graphs.forward.operations
  forward = {t for op in operations[:graphs.forward_op_count]
             if not isinstance(op, mtf.Variable) for t in op.outputs}
  kept = {t for op in operations[graphs.forward_op_count:] for t in op.inputs
          if t in forward}
  return sorted(kept, key=lambda t: t.name)


def activation_itemsize(settings):
  """Bytes per activation element (every forward tensor is counted at this size)."""
  return 2 if settings.activation_dtype == "bfloat16" else 4


def summarize(settings):
  """Builds the graphs (`build_graphs`) and validates the layout on the training one.

  Activation memory counts every tensor of one microbatch's forward pass; kept
  activation memory the part of it that the backward pass reads (`kept_tensors`).
  """
  graphs = build_graphs(settings)
  graph, model, optimizer = graphs.training, graphs.model, graphs.optimizer
  settings.layout.validate(graph)

  by_role = collections.Counter()
  seq_maps = []
  for v in graph.trainable_variables:
    record = variables_lib.record_of(v)
    by_role[record.role] += v.shape.size
    if record.role == variables_lib.SEQ_MAP:
      seq_maps.append((v.name, v.shape.to_integer_list))
  forward = forward_tensors(graphs)
  attention = [t for t in forward
               if {"length", "memory_length", "batch"} <= set(t.shape.dimension_names)]
  itemsize = activation_itemsize(settings)
  largest = sorted(forward, key=lambda t: -t.shape.size)[:LARGEST]
  heads = [d.size for v in graph.trainable_variables for d in v.shape.dims
           if d.name == "heads"]
  return Summary(
      params=sum(by_role.values()),
      params_by_role=dict(by_role),
      variable_shapes={v.name: v.shape.to_integer_list for v in graph.all_variables},
      seq_maps=seq_maps,
      attention_map_elements=max((t.shape.size for t in attention), default=0),
      activation_bytes=sum(t.shape.size * itemsize for t in forward),
      kept_activation_bytes=sum(t.shape.size * itemsize for t in kept_tensors(graphs)),
      largest_activations=[(t.name, t.shape.to_integer_list, t.shape.size * itemsize)
                           for t in largest],
      optimizer_state_bytes=optimizer.state_bytes(),
      num_layers=model.num_layers, d_model=model.d_model,
      heads=max(heads, default=0))
