"""The package's shape: imports point down the layers of the architecture, there is no
import circle, and no top-level package holds most of the code. Parsed from the source,
so a new module is checked as soon as it exists."""
import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Each top-level package or module may import only lower layers (and itself).
LAYER_OF = {
    "mtf_compat": 0,
    "layers": 1,
    "models": 2, "optimizers": 2, "data": 2,
    "trainer": 3,           # the training job, and the run core the other jobs read
    "inference": 4, "reports": 4,
    "cli": 5,
}
NOT_PACKAGE = {"tests", "docs", "gin", "build", "runs", "report", "bench"}
MAX_SHARE = 0.40


def project_modules():
  """{dotted module name: path} of every project .py file outside tests/."""
  modules = {}
  for root, dirs, files in os.walk(REPO):
    dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in NOT_PACKAGE
                     and not d.endswith(".egg-info") and d != "__pycache__")
    for name in files:
      if name.endswith(".py") and name != "setup.py":
        path = os.path.join(root, name)
        dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
        modules[dotted[:-len(".__init__")] if dotted.endswith(".__init__")
                else dotted] = path
  return modules


def imported_modules(path, modules):
  """The project modules a file imports, anywhere in it (function bodies too)."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read())
  names = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names += [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names += [node.module] + [node.module + "." + a.name for a in node.names]
  found = set()
  for name in names:
    while name and name not in modules:
      name = name.rpartition(".")[0]
    if name:
      found.add(name)
  return found


def import_graph():
  modules = project_modules()
  graph = {}
  for module, path in modules.items():
    # A module's own package __init__ runs first anyway: not an edge back.
    parents = {module.rsplit(".", i)[0] for i in range(1, module.count(".") + 1)}
    graph[module] = imported_modules(path, modules) - {module} - parents
  return graph


def top(module):
  return module.split(".")[0]


def upward_imports(graph, layer_of):
  return sorted("%s imports %s" % (m, t) for m, targets in graph.items()
                for t in targets
                if top(m) != top(t) and layer_of[top(t)] >= layer_of[top(m)])


def import_circle(graph):
  """One circle of imports as a list of modules, or None."""
  state, path = {}, []

  def visit(module):
    state[module] = "open"
    path.append(module)
    for target in sorted(graph[module]):
      if state.get(target) == "open":
        return path[path.index(target):] + [target]
      if target not in state:
        circle = visit(target)
        if circle:
          return circle
    state[module] = "done"
    path.pop()
    return None

  for module in sorted(graph):
    if module not in state:
      circle = visit(module)
      if circle:
        return circle
  return None


def test_every_top_level_package_has_a_place_in_the_layers():
  assert {top(m) for m in import_graph()} <= set(LAYER_OF)


def test_imports_point_down_the_layers():
  assert upward_imports(import_graph(), LAYER_OF) == []


def test_there_is_no_import_circle():
  assert import_circle(import_graph()) is None


def test_no_top_level_package_holds_more_than_40_percent_of_the_lines():
  lines = {}
  for module, path in project_modules().items():
    with open(path, encoding="utf-8") as f:
      code = [l for l in f if l.strip() and not l.strip().startswith("#")]
    lines[top(module)] = lines.get(top(module), 0) + len(code)
  total = sum(lines.values())
  assert {p: n for p, n in lines.items() if n > MAX_SHARE * total} == {}


# The checks above must catch what they exist to catch.
def test_the_checks_catch_a_circle_and_an_upward_import():
  graph = {"layers.a": {"layers.b"}, "layers.b": {"trainer.c"},
           "trainer.c": {"layers.a"}}
  assert import_circle(graph) == ["layers.a", "layers.b", "trainer.c", "layers.a"]
  assert upward_imports(graph, LAYER_OF) == ["layers.b imports trainer.c"]
  assert import_circle({"layers.a": {"layers.b"}, "layers.b": set()}) is None


def test_imports_inside_functions_count(tmp_path):
  source = tmp_path / "m.py"
  source.write_text("def f():\n  from trainer import loop\n  import layers.mixer as m\n")
  modules = {"trainer.loop": "", "layers.mixer": "", "layers": ""}
  assert imported_modules(str(source), modules) == {"trainer.loop", "layers.mixer"}
