"""The layout's rules, read from every module's imports (an AST walk, nothing is imported):

- no import circle, counting imports inside functions and under TYPE_CHECKING too;
- servo/core/ is pure: it imports only servo/core/, no network, kubernetes, sqlite or process
  module, and never reads the environment or a clock;
- a command package (run, webhook, collector, check, local) never imports another one, and the
  shared layers never import a command package or servo/__main__;
- mon/ never imports servo/;
- the environment is read by entry points alone (a `__main__` module, or one run with `-m`):
  every other module is handed the mapping, so each program reads its variables in one place.

Each rule is also broken on purpose in a small tree under tmp_path, so the checker is seen to
report it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = "servo.core"
COMMANDS = ("run", "webhook", "collector", "check", "local")
# What a pure module may not import: I/O by network, the API, a database, a process or TLS.
# urllib.parse is pure text and allowed.
IMPURE_MODULES = (
    "http.client",
    "http.server",
    "urllib.request",
    "urllib3",
    "requests",
    "socket",
    "ssl",
    "kubernetes",
    "sqlite3",
    "subprocess",
    "threading",
)
# The environment and the clocks, as attribute reads (os.environ) or imported names.
IMPURE_NAMES = {
    "os": {"environ", "getenv", "environb"},
    "time": {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter"},
    "datetime": {"now", "utcnow", "today"},
    "date": {"today"},
}


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def package(self) -> str:
        return self.name if self.path.name == "__init__.py" else self.name.rpartition(".")[0]


def modules(root: Path, tops: tuple[str, ...] = ("servo", "mon")) -> dict[str, Module]:
    found: dict[str, Module] = {}
    for top in tops:
        for path in sorted((root / top).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(parts)
            found[name] = Module(name, path, ast.parse(path.read_text(), str(path)))
    return found


def imported(mod: Module, known: dict[str, Module]) -> Iterator[tuple[str, int]]:
    """Every module name `mod` imports (a package's submodule when `from pkg import sub`)."""
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = mod.package.split(".")[: len(mod.package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub if sub in known else base), node.lineno


def reads(mod: Module, names: dict[str, set[str]]) -> Iterator[tuple[str, int]]:
    """Where `mod` reads one of `names` ({"os": {"environ"}}): os.environ, or from os import."""
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.attr in names.get(node.value.id, ()):
                yield f"{node.value.id}.{node.attr}", node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module in names:
            for alias in node.names:
                if alias.name in names[node.module]:
                    yield f"{node.module}.{alias.name}", node.lineno


ENVIRONMENT = {"os": {"environ", "getenv", "environb", "putenv", "unsetenv"}}


def is_entry_point(mod: Module) -> bool:
    if mod.path.name == "__main__.py":
        return True
    for node in mod.tree.body:
        test = node.test if isinstance(node, ast.If) else None
        if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name):
            if test.left.id == "__name__":
                return True
    return False


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def command_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "servo" and parts[1] in COMMANDS else None


def rule_violations(mod: Module, target: str) -> Iterator[str]:
    where = f"{mod.name} imports {target}"
    if within(mod.name, "mon") and within(target, "servo"):
        yield f"{where}: mon never imports servo"
    if within(mod.name, CORE):
        if within(target, "servo") and not within(target, CORE):
            yield f"{where}: servo.core imports only servo.core"
        if any(within(target, impure) for impure in IMPURE_MODULES):
            yield f"{where}: servo.core does no I/O"
    own, theirs = command_of(mod.name), command_of(target)
    if theirs is not None and own != theirs:
        if own is not None:
            yield f"{where}: a command package never imports another one"
        elif within(mod.name, "servo") and mod.name != "servo.__main__":
            yield f"{where}: a shared layer never imports a command package"
    if target == "servo.__main__" and mod.name != "servo.__main__":
        yield f"{where}: only the entry point is servo.__main__"


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, or of one importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def violations(root: Path) -> list[str]:
    known = modules(root)
    graph: dict[str, set[str]] = {name: set() for name in known}
    problems: list[str] = []
    for mod in known.values():
        for target, line in imported(mod, known):
            problems += [f"{p} (line {line})" for p in rule_violations(mod, target)]
            if target in known:
                graph[mod.name].add(target)
        if within(mod.name, CORE):
            problems += [
                f"{mod.name} reads {what} (line {line}): servo.core is given it"
                for what, line in reads(mod, IMPURE_NAMES)
            ]
        if not is_entry_point(mod):
            problems += [
                f"{mod.name} reads {what} (line {line}): only an entry point reads it"
                for what, line in reads(mod, ENVIRONMENT)
            ]
    problems += [f"import circle among: {', '.join(c)}" for c in circles(graph)]
    return problems


def test_the_project_keeps_every_rule() -> None:
    assert violations(ROOT) == []


def test_every_command_is_a_package_of_its_own() -> None:
    for command in COMMANDS:
        assert (ROOT / "servo" / command / "__init__.py").is_file()


# -- the checker, seen to fail ----------------------------------------------------------------

CLEAN = {
    "servo/__init__.py": "",
    "servo/__main__.py": "import os\nfrom servo.run import cli\ncli.main(os.environ)\n",
    "servo/check/main.py": 'import os\nif __name__ == "__main__":\n    print(os.environ)\n',
    "servo/core/__init__.py": "",
    "servo/core/models.py": "import math\nfrom urllib.parse import quote\n",
    "servo/core/rules.py": "from servo.core.models import math\nfrom . import models\n",
    "servo/kube/__init__.py": "",
    "servo/kube/client.py": "import kubernetes\nfrom servo.core import models\n",
    "servo/run/__init__.py": "",
    "servo/run/cli.py": "from servo.kube.client import kubernetes\nfrom .app import x\n",
    "servo/run/app.py": "import time\nx = time.time()\n",
    "servo/check/__init__.py": "",
    "servo/check/cli.py": "from servo.core.models import math\n",
    "mon/__init__.py": "",
    "mon/cue.py": "import os\n",
}


# An import only the type checker follows still closes a circle (the design has one then).
TYPE_CHECKING_IMPORT = (
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import cli\n"
)


def tree(tmp_path: Path, extra: dict[str, str]) -> Path:
    for name, text in {**CLEAN, **extra}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_a_clean_tree_has_no_violation(tmp_path: Path) -> None:
    assert violations(tree(tmp_path, {})) == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"servo/core/rules.py": "from servo.kube import client\n"},
            "servo.core.rules imports servo.kube.client: servo.core imports only servo.core",
        ),
        (
            {"servo/core/rules.py": "import requests\n"},
            "servo.core.rules imports requests: servo.core does no I/O",
        ),
        (
            {"servo/core/rules.py": "def f():\n    import sqlite3\n"},
            "servo.core.rules imports sqlite3: servo.core does no I/O",
        ),
        (
            {"servo/core/rules.py": "from http.client import HTTPConnection\n"},
            "servo.core.rules imports http.client: servo.core does no I/O",
        ),
        (
            {"servo/core/rules.py": "import os\nURL = os.environ['URL']\n"},
            "servo.core.rules reads os.environ (line 2): servo.core is given it",
        ),
        (
            {"servo/core/rules.py": "import time\nNOW = time.time()\n"},
            "servo.core.rules reads time.time (line 2): servo.core is given it",
        ),
        (
            {"servo/core/rules.py": "from datetime import datetime\nT = datetime.now()\n"},
            "servo.core.rules reads datetime.now (line 2): servo.core is given it",
        ),
        (
            {"servo/run/app.py": "from servo.check.cli import math\n"},
            "servo.run.app imports servo.check.cli: a command package never imports another one",
        ),
        (
            {"servo/kube/client.py": "from servo.run import app\n"},
            "servo.kube.client imports servo.run.app: a shared layer never imports a command",
        ),
        (
            {"servo/kube/client.py": "import os\nHOST = os.environ.get('HOST')\n"},
            "servo.kube.client reads os.environ (line 2): only an entry point reads it",
        ),
        (
            {"mon/cue.py": "from os import getenv\n"},
            "mon.cue reads os.getenv (line 1): only an entry point reads it",
        ),
        (
            {"mon/cue.py": "from servo.core.models import math\n"},
            "mon.cue imports servo.core.models: mon never imports servo",
        ),
        (
            {"servo/run/app.py": TYPE_CHECKING_IMPORT},
            "import circle among: servo.run.app, servo.run.cli",
        ),
    ],
)
def test_the_checker_reports_a_broken_rule(
    tmp_path: Path, extra: dict[str, str], expected: str
) -> None:
    found = violations(tree(tmp_path, extra))
    assert any(p.startswith(expected) for p in found), found
