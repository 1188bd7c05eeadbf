"""The package's shape: every module imports, the import graph has no cycle, and dependencies point down.

    edge       cli, __main__
    facade     api, lstmcast (the package itself)
    workflows  train.workflow, forecast, evaluate, detect, plots
    core       data, model, run, train (the loop, its state, devices, signals)
    utilities  errors, config, version

Imports inside functions count: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import lstmcast



PACKAGE = Path(lstmcast.__file__).parent
LAYERS = {"utilities": 0, "core": 1, "workflows": 2, "facade": 3, "edge": 4}


def modules() -> list[str]:
    found = ["lstmcast"]
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="lstmcast."):
        found.append(info.name)
    return sorted(found)


def source_of(name: str) -> Path:
    path = PACKAGE.joinpath(*name.split(".")[1:])
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imports_of(name: str, known: set[str]) -> set[str]:
    """The lstmcast modules `name` imports, at the top or inside functions."""
    tree = ast.parse(source_of(name).read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module in known:
            # `from lstmcast.run import rundir` depends on the module rundir; `from lstmcast.run.rundir
            # import load_run` on rundir itself. (Importing a package's module runs the package's
            # __init__ too; those files import nothing here, or only their own modules.)
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            out.update(subs)
            if len(subs) < len(node.names):
                out.add(node.module)
    out.discard(name)
    return out


def layer(name: str) -> str:
    parts = name.split(".")
    top = parts[1] if len(parts) > 1 else ""
    if top in ("cli", "__main__"):
        return "edge"
    if name in ("lstmcast", "lstmcast.api"):
        return "facade"
    if top in ("forecast", "evaluate", "detect", "plots") or name == "lstmcast.train.workflow":
        return "workflows"
    if top in ("errors", "config", "version"):
        return "utilities"
    return "core"


def graph() -> dict[str, set[str]]:
    names = modules()
    known = set(names)
    return {name: imports_of(name, known) for name in names}


def test_every_module_imports():
    for name in modules():
        if name != "lstmcast.__main__":  # `python -m lstmcast`: importing it runs the CLI
            importlib.import_module(name)


def test_import_graph_has_no_cycle():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_dependencies_point_down():
    wrong = [f"{a} ({layer(a)}) imports {b} ({layer(b)})" for a, deps in graph().items() for b in deps
             if LAYERS[layer(b)] > LAYERS[layer(a)]]
    assert not wrong, "\n".join(wrong)


def test_nothing_below_the_cli_imports_the_facade():
    users = sorted(a for a, deps in graph().items() if "lstmcast.api" in deps)
    assert all(layer(u) in ("edge", "facade") for u in users), users


def test_no_module_shadows_the_standard_library_or_the_facade():
    import sys

    facade = {"train", "resume", "predict", "evaluate", "backtest", "predict_to_file", "detect", "detect_to_file"}
    for name in modules():
        leaf = name.rsplit(".", 1)[-1]
        if name.count(".") == 1 and leaf in ("train", "evaluate", "forecast", "detect", "model", "data", "run", "cli"):
            continue  # the subpackages are the concepts the facade's functions are named after
        assert leaf not in sys.stdlib_module_names, f"{name} shadows the standard library's {leaf}"
        assert leaf not in facade, f"{name} is named like the facade's function {leaf}()"


def test_run_json_has_one_reader_and_one_writer():
    """Only run.record turns run.json into objects and back; only run.rundir reads or writes the file."""
    offenders = []
    for name in modules():
        if name in ("lstmcast.run.record", "lstmcast.run.rundir"):
            continue
        text = source_of(name).read_text()
        if "RunRecord.from_json" in text or "_json_bytes(" in text or "/ RUN_JSON" in text or '/ "run.json"' in text:
            offenders.append(name)
    assert not offenders, offenders
