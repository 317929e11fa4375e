"""The package's import graph has no cycle (issue 25) and its bottom layer, the config, stands alone (issue 36)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import interfere

SRC = Path(interfere.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its text (also under TYPE_CHECKING and inside
    functions: a cycle that is only broken by import order is still a cycle)."""
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                            for a in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_under_src():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_config_loads_neither_training_nor_transformer_lens():
    """Reading a config or a thresholds file is the layer everything else stands on: it must not pull in train/ or
    TransformerLens (a fresh interpreter, so nothing else imported them first)."""
    code = ("import sys, interfere.config; print(sorted(m for m in sys.modules "
            "if m.startswith(('interfere.train', 'transformer_lens'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    assert out.strip() == "[]", out


def test_only_user_errors_become_one_line(capsys):
    """The CLI turns a UserError (and its kinds) into one line and exit code 2; a bug keeps its traceback."""
    from interfere.ca.rle import RLEError
    from interfere.cli import exit_on_user_error
    from interfere.errors import UserError
    from interfere.model.checkpoint import CheckpointError
    from interfere.train.runs import TrainingError

    for kind in (UserError, RLEError, CheckpointError, TrainingError):
        with pytest.raises(SystemExit) as exit_, exit_on_user_error():
            raise kind("bad input, and the fix")
        assert exit_.value.code == 2 and capsys.readouterr().err == "error: bad input, and the fix\n"
    for bug in (ValueError("a library bug"), KeyError("k"), FileNotFoundError("internal")):
        with pytest.raises(type(bug)), exit_on_user_error():
            raise bug


def test_library_code_never_imports_a_command():
    """Commands sit on top: nothing under src/ but a command (and the dispatcher) imports interfere.commands.*."""
    importers = {m for m, targets in import_graph().items() for t in targets
                 if t == "interfere.commands" or t.startswith("interfere.commands.")}
    assert importers and all(m.startswith("interfere.commands") or m == "interfere.__main__" for m in importers), \
        importers


def test_python_m_interfere_lists_every_command_and_runs_one(capsys, monkeypatch):
    """``python -m interfere`` lists each command of COMMANDS, whose modules all have ``main``; a name runs that
    command with its flags and the command line it records; an unknown name is one line and exit code 2."""
    import importlib

    from interfere.__main__ import main
    from interfere.cli import command_line
    from interfere.commands import COMMANDS

    main([])
    listed = capsys.readouterr().out
    assert all(f"  {name} " in listed for name in COMMANDS)
    assert all(callable(importlib.import_module(module).main) for module, _ in COMMANDS.values())
    monkeypatch.setattr(sys, "argv", sys.argv[:])  # the dispatcher sets argv[0]; restore it after
    main(["reference", "--list"])
    assert "ref:demo " in capsys.readouterr().out
    assert command_line().endswith(" -m interfere reference --list")
    with pytest.raises(SystemExit) as exit_:
        main(["nope"])
    assert exit_.value.code == 2 and capsys.readouterr().err.count("\n") == 1
