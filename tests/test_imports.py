"""The layer contract: no import cycles among sweep's modules, counting imports inside functions too."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sweep"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict:
    """{module: {sweep modules it imports anywhere in its body}}; `from sweep.x import y` counts sweep.x.y when
    that is a module, else sweep.x."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def cycles(graph: dict) -> list:
    """Every strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    graph = import_graph()
    assert "sweep.fit.pipeline" in graph and "sweep.ladder.grid" in graph  # the walk found the package
    assert cycles(graph) == []


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


LAYERS = ["corpora", "config", "compose", "store", "run", "ladder", "launch", "fit", "jobs", "cli", "__main__"]
"""Bottom to top: a module may import from its own layer and the layers below it, never above. corpora holds
shipped text, no code; config and compose (Hydra stops there) are the schemas; store knows the files; run trains one run; ladder decides what runs
(grid, shapes, hyperparameters, plan); launch decides where and how they train (launchers, packing, slots);
fit reads results and never trains; jobs chain the stages; cli dispatches."""


def layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else module


def upward_imports(graph: dict) -> list:
    rank = {name: i for i, name in enumerate(LAYERS)}
    return sorted(f"{a} -> {b}" for a, deps in graph.items() for b in deps
                  if rank[layer(b)] > rank[layer(a)])


def test_layers_only_import_downward():
    graph = import_graph()
    assert {layer(m) for m in graph if m != "sweep"} <= set(LAYERS)  # every folder has its place
    assert upward_imports(graph) == []


def test_the_layer_check_finds_an_upward_import():
    graph = {"sweep.store.results": {"sweep.ladder.grid"}, "sweep.ladder.grid": {"sweep.store.results"}}
    assert upward_imports(graph) == ["sweep.store.results -> sweep.ladder.grid"]


def test_the_python_api_resolves_every_name_lazily():
    import subprocess
    import sys

    code = ("import sys, sweep; assert 'torch' not in sys.modules, 'import sweep must stay light'; "
            "names = [n for n in sweep.__all__ if getattr(sweep, n) is None]; assert not names, names; "
            "print(len(sweep.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and int(out.stdout) >= 10, out.stderr[-2000:]
