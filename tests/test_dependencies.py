"""Each member's declared dependencies cover what its code imports, and nothing more.

Every `.py` under a member's `src/` is parsed with `ast`. An absolute import that runs when
the module is imported (module level, not under `try: ... except ImportError`) must be in
`[project].dependencies`; one inside a function, under such a guard or under
`if TYPE_CHECKING:` may instead be in `[project.optional-dependencies]`. The standard library,
the member's own module and `__future__` are left out. Import names map to distributions
through `importlib.metadata.packages_distributions()`, or else the name itself with `_` -> `-`.
A declared dependency that nothing imports is flagged too (extras such as `mlx[cpu]` are
stripped first: its import name is `mlx`).
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from workspace import MEMBERS

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11+")

# Declared dependencies that are needed although no module imports them, with why.
NEEDED_WITHOUT_IMPORT: dict[str, set[str]] = {
    # uvicorn serves the realtime route's WebSockets with it (`ws="websockets-sansio"`);
    # starlette parses multipart uploads (`request.form()`) with python-multipart; uvicorn
    # parses HTTP with httptools and runs uvloop's event loop when they are installed
    # (its "auto" choice; each upload's parse in C, not h11's Python)
    "nemo-mlx-serve": {"websockets", "python-multipart", "httptools", "uvloop"},
}

_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


@dataclass(frozen=True)
class Import:
    name: str  # top-level module name
    where: str  # file:line
    required: bool  # runs at import time, unguarded: must be a core dependency


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of `-_.` as one `-`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(
        (isinstance(t, ast.Name) and t.id in _IMPORT_ERRORS)
        or (isinstance(t, ast.Attribute) and t.attr in _IMPORT_ERRORS)
        for t in types
    )


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_in(source: str, filename: str) -> list[Import]:
    """Absolute imports of one module, each marked required (module level, unguarded) or not."""
    found: list[Import] = []

    def visit(nodes, required: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.append(
                        Import(alias.name.split(".")[0], f"{filename}:{node.lineno}", required)
                    )
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module:
                    found.append(
                        Import(node.module.split(".")[0], f"{filename}:{node.lineno}", required)
                    )
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(ast.iter_child_nodes(node), False)
            elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
                guarded = any(_catches_import_error(h) for h in node.handlers)
                visit(node.body, required and not guarded)
                visit([*node.handlers, *node.orelse, *node.finalbody], required)
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.body, False)
                visit(node.orelse, required)
            else:
                visit(ast.iter_child_nodes(node), required)

    visit([ast.parse(source, filename=filename)], True)
    return found


def member_imports(member: Path, own_module: str) -> list[Import]:
    """Third-party imports of a member's src/ tree (no stdlib, own module or __future__)."""
    skip = set(sys.stdlib_module_names) | {own_module, "__future__"}
    found = []
    for path in sorted((member / "src").rglob("*.py")):
        rel = path.relative_to(member).as_posix()
        found += [i for i in imports_in(path.read_text(), rel) if i.name not in skip]
    return found


@cache
def _import_to_distributions() -> dict[str, list[str]]:
    return packages_distributions()


def distributions_of(import_name: str) -> set[str]:
    dists = _import_to_distributions().get(import_name) or [import_name.replace("_", "-")]
    return {normalize(d) for d in dists}


def declared(requirements: list[str]) -> set[str]:
    """Distribution names of requirement strings, extras and markers stripped."""
    return {normalize(Requirement(r).name) for r in requirements}


def dependency_problems(
    project: dict, imports: list[Import], needed_without_import: set[str] = frozenset()
) -> list[str]:
    """What the checker reports for one member: missing and unused declared dependencies."""
    core = declared(project.get("dependencies", []))
    optional = set().union(
        *(declared(reqs) for reqs in project.get("optional-dependencies", {}).values())
    )
    problems = []
    imported: set[str] = set()
    for imp in imports:
        dists = distributions_of(imp.name)
        imported |= dists
        allowed = core if imp.required else core | optional
        if not dists & allowed:
            where = "[project].dependencies" if imp.required else "dependencies or an extra"
            problems.append(f"{imp.where}: imports {imp.name!r}, not in {where}")
    for dist in sorted(
        (core | optional) - imported - {normalize(n) for n in needed_without_import}
    ):
        problems.append(f"declares {dist!r}, which no module imports")
    return problems


def _project(member: Path) -> dict:
    return tomllib.loads((member / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: m.name)
def test_declared_dependencies_match_imports(member):
    project = _project(member)
    own = project["name"].replace("-", "_")
    assert (member / "src" / own / "__init__.py").is_file(), "the checker reads src/<module>/"
    imports = member_imports(member, own)
    problems = dependency_problems(
        project, imports, NEEDED_WITHOUT_IMPORT.get(project["name"], set())
    )
    assert not problems, f"{project['name']}:\n" + "\n".join(problems)


def test_checker_sees_module_level_guarded_and_nested_imports():
    source = """
from __future__ import annotations
import os
import numpy as np
from mlx.core import array
from . import sibling
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    import pydantic
try:
    import soxr
except ImportError:
    soxr = None
try:
    import yaml
except ValueError:
    pass
class A:
    import tqdm
def f():
    import sounddevice
"""
    found = {(i.name, i.required) for i in imports_in(source, "m.py")}
    assert found == {
        ("__future__", True),
        ("os", True),
        ("numpy", True),
        ("mlx", True),
        ("typing", True),
        ("pydantic", False),
        ("soxr", False),
        ("yaml", True),
        ("tqdm", True),
        ("sounddevice", False),
    }


def test_checker_reports_missing_and_unused_dependencies():
    imports = [
        Import("numpy", "a.py:1", True),
        Import("mlx", "a.py:2", True),
        Import("sounddevice", "a.py:3", False),
        Import("yaml", "a.py:4", True),
    ]
    project = {
        "dependencies": ["mlx[cpu]>=0.29; sys_platform == 'linux'", "tqdm>=4", "PyYAML>=6"],
        "optional-dependencies": {"mic": ["sounddevice>=0.4"]},
    }
    problems = dependency_problems(project, imports)
    assert problems == [
        "a.py:1: imports 'numpy', not in [project].dependencies",
        "declares 'tqdm', which no module imports",
    ]
    # an extra does not satisfy a module-level import
    project["dependencies"].append("numpy")
    imports.append(Import("sounddevice", "b.py:1", True))
    assert dependency_problems(project, imports, {"tqdm"}) == [
        "b.py:1: imports 'sounddevice', not in [project].dependencies"
    ]
