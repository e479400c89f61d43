"""The architecture as docs/architecture.md draws it, checked from the imports themselves.

Every ``import`` and ``from ... import`` in ``vistrain/`` counts, at module level or inside a function:
a lazy import is a dependency all the same. The checks: no import cycle among modules, and each module
imports only modules of its own layer or the layers below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vistrain"

# docs/architecture.md, "Which way the imports point": a module may import its own layer and the ones below
LAYERS = {
    1: ["vistrain", "vistrain.errors", "vistrain.config", "vistrain.events", "vistrain.hookspecs", "vistrain.registry",
        "vistrain.plugins", "vistrain.dispatch", "vistrain.runfolder", "vistrain.checkpoint", "vistrain.durable",
        "vistrain.metrics"],
    2: ["vistrain.data", "vistrain.models", "vistrain.augment", "vistrain.listeners"],
    3: ["vistrain.engine", "vistrain.calibration"],
    4: ["vistrain.strategies"],
    5: ["vistrain.runner", "vistrain.inference"],
    6: ["vistrain.policy_search", "vistrain.tune", "vistrain.report", "vistrain.export", "vistrain.averaging", "vistrain.lr_find",
        "vistrain.gradcam",
        "vistrain.plugin_doctor"],
    7: ["vistrain.cli", "vistrain.tui", "vistrain.__main__"],
}
# the acceptance rule of issue 19, stated on its own so that a change of LAYERS cannot loosen it
LOW = ("vistrain.models", "vistrain.data", "vistrain.augment", "vistrain.engine")
HIGH = ("vistrain.inference", "vistrain.runner", "vistrain.strategies", "vistrain.cli", "vistrain.tui", "vistrain.report")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The vistrain modules *name* imports (a ``from pkg import mod`` counts as pkg.mod when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    out = set()
    for target in found:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_of(name: str) -> int | None:
    best = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (layer, len(prefix))
    return best[0] if best else None


def test_no_import_cycle_among_modules():
    assert cycles(import_graph()) == []


def test_every_module_has_a_layer():
    assert [m for m in import_graph() if layer_of(m) is None] == []


def test_imports_point_down_the_layers():
    graph = import_graph()
    upward = [f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
              for m, deps in sorted(graph.items()) for d in sorted(deps)
              if d != "vistrain" and layer_of(d) > layer_of(m)]
    assert upward == []


def test_models_data_augment_and_engine_import_nothing_that_drives_runs():
    graph = import_graph()
    bad = [(m, d) for m, deps in graph.items() if m.startswith(LOW) for d in deps if d.startswith(HIGH)]
    assert bad == []


@pytest.mark.parametrize("source, expected", [
    ("import vistrain.runner\n", {"vistrain.runner"}),
    ("def f():\n    from vistrain.inference import load\n", {"vistrain.inference"}),
    ("from vistrain import checkpoint\n", {"vistrain.checkpoint"}),
    ("from . import stages\n", {"vistrain.strategies.stages"}),
    ("from ..engine.loop import fit\n", {"vistrain.engine.loop"}),
])
def test_the_import_reader_sees_every_form(tmp_path, source, expected):
    """The checks above are only as good as this reader: lazy, relative and package imports all count."""
    path = tmp_path / "mod.py"
    path.write_text(source)
    known = {"vistrain", "vistrain.runner", "vistrain.inference", "vistrain.checkpoint", "vistrain.strategies",
             "vistrain.strategies.stages", "vistrain.engine", "vistrain.engine.loop", "vistrain.strategies.mod"}
    assert imports_of("vistrain.strategies.mod", path, known) == expected


def test_a_cycle_and_an_upward_import_are_caught():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert layer_of("vistrain.models.knn") == 2 and layer_of("vistrain.inference") == 5
