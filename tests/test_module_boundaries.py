"""The package's import graph: no cycles, and each stage imports only itself and earlier stages.

Read from the source with `ast` (nothing is imported), counting function-local imports too: a lazy
import is still a dependency, and hiding a cycle in a function was how the old ones survived.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: The data's order; a module may import its own stage and earlier ones. Shared utilities (io,
#: resample, distributed, steps, memory, the package itself) import no stage; the adapters the workflow calls (cli,
#: __main__, and config, which checks a config against every stage's registry) may import all.
STAGES = {"acquire": 0, "calibrate": 1, "shards": 1, "normalise": 2, "split": 2, "dataset": 3, "loader": 4, "models": 5,
          "train": 6, "evaluate": 7, "expert": 8, "report": 9}
UTILITIES = {"io", "resample", "distributed", "steps", "memory", ""}
#: Known exceptions, each with its reason.
ALLOWED = {
    # The feature-network commands (registered by the cli) resume a finished training's checkpoint.
    ("solargen.models.feature_commands", "solargen.train"),
}


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module → the solargen modules it imports (``from x import y`` counts x.y where that is a module)."""
    graph = {}
    for f in src.rglob("*.py"):
        parts = list(f.relative_to(src).with_suffix("").parts)
        package = parts[:-1]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        deps = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                mod = ".".join(base + ([node.module] if node.module else []))
                deps |= {mod} | {f"{mod}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[".".join(parts)] = deps
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _stage(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_the_checks_see_a_cycle_and_a_lazy_import(tmp_path):
    pkg = tmp_path / "solargen"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from .a import g\n")
    graph = import_graph(tmp_path)
    assert graph["solargen.b"] == {"solargen.a"}
    assert cycles(graph) == [["solargen.a", "solargen.b"]]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_stages_import_only_themselves_and_earlier_stages():
    bad = []
    for module, deps in import_graph().items():
        stage = _stage(module)
        for dep in deps:
            target = _stage(dep)
            if (module, dep) in ALLOWED or target == stage:
                continue
            if stage in UTILITIES:
                ok = target in UTILITIES
            elif stage in STAGES:
                ok = target in UTILITIES or target in STAGES and STAGES[target] <= STAGES[stage]
            else:  # cli, __main__, config
                ok = True
            if not ok:
                bad.append(f"{module} → {dep}")
    assert not bad, "imports against the data's order:\n" + "\n".join(sorted(bad))


def test_the_data_stages_import_no_torch():
    """The jobs before training (acquire … dataset, its QA and the DFT figure) read and write files
    only: importing torch would cost each of them ~3 s of CPU for nothing."""
    import subprocess
    import sys

    code = ("import sys\n"
            "import solargen.acquire, solargen.calibrate, solargen.shards, solargen.normalise, solargen.split, "
            "solargen.dataset, solargen.config\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=SRC)
