"""The house rules, read from the code with `ast`: which layer may import which, one owner for
the run state's file names, and unit tests that mirror the package.

    base        config errors runner lock state text results verdict   imports only base
    stacks/     the pure stack models (compose file, rules, ...) base, stacks
    tools/      one module per outside tool                     base, stacks, tools
    monitoring/ publish path, metrics, notify, progress, page base, monitoring
    cycles/     locked runs (backup, restore, drill, update)    base, stacks, tools, monitoring, cycles.context
                (a cycle is a module or a package: the modules of one package import each other)
                (cycles.context, cycles.frame (the run frame), cycles.history (the local history's owner)
                and cycles.holds (the prune holds' owner) are shared by the cycles)
    host/       storage setup, cron, boot unit, doctor          base, stacks, tools, monitoring, host
    views/      status, fleet summary, run table, outdated      base, stacks, tools, views
    cli/        the Click commands, one module per group        anything; only orchestrator.py imports it
    orchestrator.py (the CLI's entry point)                     anything; nothing imports it
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from management import state

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "management"
BASE = {"config", "errors", "runner", "lock", "state", "text", "results", "verdict"}
ALLOWED = {
    "base": {"base"},
    "stacks": {"base", "stacks"},
    "tools": {"base", "stacks", "tools"},
    "monitoring": {"base", "monitoring"},
    "cycles": {"base", "stacks", "tools", "monitoring", "cycles.context"},
    "host": {"base", "stacks", "tools", "monitoring", "host"},
    "views": {"base", "stacks", "tools", "views"},
    "cli": {"base", "stacks", "tools", "monitoring", "cycles", "cycles.context", "host", "views", "cli"},
}
SHARED_CYCLES = ("context", "frame", "history", "holds")  # the cycle modules every cycle may import


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def layer_of(dotted: str) -> str:
    """management.tools.zfs -> tools; management.config -> base; management.cycles.context ->
    cycles.context (the one cycle module every cycle may import)."""
    parts = dotted.split(".")[1:]
    if not parts:
        return "base"  # `from management import __version__`
    if parts[0] in BASE:
        return "base"
    if parts[0] == "cycles" and len(parts) > 1 and parts[1] in SHARED_CYCLES:
        return "cycles.context"
    return parts[0]


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import of this project's code, at any depth (lazy ones too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, f"<relative {'.' * node.level}{node.module or ''}>"))
            elif node.module and (node.module == "management" or node.module.startswith("management.")):
                for alias in node.names:  # `from management.host import schedule` imports host.schedule
                    sub = f"{node.module}.{alias.name}"
                    found.append((node.lineno, sub if (ROOT / (sub.replace(".", "/") + ".py")).exists()
                                  else node.module))
            elif node.module == "orchestrator":
                found.append((node.lineno, "orchestrator"))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name.startswith("management") or a.name == "orchestrator"]
    return found


def cycle_of(dotted: str) -> str:
    """The cycle a module belongs to: management.cycles.backup.steps -> management.cycles.backup (a cycle
    may be a package of modules, which import each other)."""
    return ".".join(dotted.split(".")[:3])


def dotted(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def violations(path: Path) -> list[str]:
    here = dotted(path)
    mine = layer_of(here)
    if mine == "cycles.context":
        mine = "base"  # the context wires tools together: it may import base and tools only
        shared = {"cycles.context"} if here != "management.cycles.context" else set()  # history uses the context
        allowed = {"base", "tools", "monitoring"} | shared
    else:
        allowed = ALLOWED[mine]
    problems = []
    for line, target in imports(path):
        where = f"{path.relative_to(ROOT)}:{line}"
        if target.startswith("<relative"):
            problems.append(f"{where}: relative import {target}; write management.<layer>.<module>")
            continue
        if target == "orchestrator":
            problems.append(f"{where}: imports the CLI")
            continue
        theirs = layer_of(target)
        if mine == "cycles" and theirs == "cycles" and cycle_of(target) != cycle_of(here):
            problems.append(f"{where}: the cycle {here} imports the cycle {target}")
        elif theirs not in allowed and theirs != mine:
            problems.append(f"{where}: {mine} may not import {theirs} ({target})")
    return problems


def test_every_module_imports_only_what_its_layer_allows():
    problems = [p for path in modules() for p in violations(path)]
    assert not problems, "\n".join(problems)


def with_source(monkeypatch, module: Path, source: str) -> None:
    original = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source if self == module else original(self, *a, **k))


@pytest.mark.parametrize("where, source, expected", [
    ("tools/borg.py", "from management.cycles.backup import BackupOrchestrator\n", "tools may not import cycles"),
    ("tools/borg.py", "from management.host import doctor\n", "tools may not import host"),
    ("tools/borg.py", "import orchestrator\n", "imports the CLI"),
    ("tools/borg.py", "from .zfs import ZFSManager\n", "relative import"),
    ("stacks/rules.py", "from management.tools.zfs import ZFSManager\n", "stacks may not import tools"),
])
def test_the_rule_catches_a_module_importing_upward_or_the_cli(monkeypatch, where, source, expected):
    module = PACKAGE / where
    with_source(monkeypatch, module, source)
    assert [p for p in violations(module) if expected in p]


def test_the_modules_of_one_cycle_package_may_import_each_other_but_not_another_cycle(monkeypatch):
    module = PACKAGE / "cycles" / "drill.py"  # read as if it were management/cycles/backup/steps.py
    monkeypatch.setattr(sys.modules[__name__], "dotted", lambda path: "management.cycles.backup.steps")
    with_source(monkeypatch, module, "from management.cycles.backup.night import mass_change\n"
                                     "from management.cycles.drill import DrillOrchestrator\n")
    assert [p.split(": ", 1)[1] for p in violations(module)] == [
        "the cycle management.cycles.backup.steps imports the cycle management.cycles.drill"]


def test_a_cycle_importing_another_cycle_is_caught(monkeypatch):
    module = PACKAGE / "cycles" / "drill.py"
    with_source(monkeypatch, module, "from management.cycles.backup import brief\n"
                                     "from management.cycles.context import Cycle\n")
    assert violations(module) == ["management/cycles/drill.py:1: the cycle management.cycles.drill imports the "
                                  "cycle management.cycles.backup"]


def test_a_stack_model_runs_no_program():
    """stacks/ is pure: a module that runs a program (the Runner, subprocess, os.system) is a tool."""
    found = []
    for path in sorted((PACKAGE / "stacks").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                     if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names
                      if n.split(".")[0] == "subprocess" or n.startswith("management.runner") or n == "os.system"]
            if isinstance(node, ast.Attribute) and node.attr in ("system", "popen", "execv", "execvp", "spawnv"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
    assert not found, "\n".join(found)


def test_every_tool_module_wraps_an_outside_program():
    """tools/ holds wrappers only: each module runs its program through the Runner or builds its
    argv (a list that starts with the program's name); a module that does neither is a model (stacks/)."""
    idle = []
    for path in sorted((PACKAGE / "tools").rglob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        runs = any(isinstance(n, ast.ImportFrom) and n.module == "management.runner" for n in ast.walk(tree))
        argv = any(isinstance(n, ast.List) and n.elts and isinstance(n.elts[0], ast.Constant)
                   and isinstance(n.elts[0].value, str) and n.elts[0].value.isidentifier() for n in ast.walk(tree))
        if not (runs or argv):
            idle.append(str(path.relative_to(ROOT)))
    assert not idle, "tools/ modules that run no program (move them to stacks/):\n" + "\n".join(idle)


def test_no_cycle_runs_a_program_itself():
    """A cycle drives programs through tools/ (files.Files for cp and rm): it never hands the runner an argv."""
    found = []
    for path in sorted((PACKAGE / "cycles").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run"
                    and "runner" in ast.unparse(node.func.value)):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert not found, "\n".join(found)


def test_no_module_but_state_names_a_state_file():
    names = {getattr(state, k) for k in ("LAST_SUCCESS", "ARCHIVES", "KEPT", "COMPACT", "DRILLS", "LAST_UPDATE",
                                         "MANIFEST_KEY")}
    found = []
    for path in [*modules(), ROOT / "orchestrator.py"]:
        if path == PACKAGE / "state.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n in node.value]
    assert not found, "\n".join(found)


def test_unit_tests_mirror_the_package():
    tests = ROOT / "tests" / "unit"
    missing = []
    for path in modules():
        rel = path.relative_to(PACKAGE)
        expected = tests / rel.parent / f"test_{rel.name}"
        if not expected.exists():
            missing.append(str(expected.relative_to(ROOT)))
    assert not missing, "modules without a unit test file:\n" + "\n".join(missing)
