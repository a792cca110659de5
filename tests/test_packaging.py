"""Every member is a publishable distribution, checked as a user of PyPI would meet it.

One `uv build --all-packages` (module-scoped) makes every wheel and sdist. Each wheel is then
installed alone into a fresh virtual environment under a tmp dir, with the sibling wheels it
names taken from the same build (the members are not on PyPI yet) and everything else from
the registry, pinned to uv.lock's versions so that uv's cache serves them. Nothing comes from
the workspace. In that environment the package is imported, its README's Python examples
run (those that need network are skipped, as in test_repository) and its commands answer
`--help`. `twine check --strict` runs on every distribution. Static checks: the metadata
(license, authors, URLs, classifiers, keywords), the LICENSE copies, the README install lines
and the root README's table of distributions and import names.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from workspace import MEMBERS, ROOT, needs_network, python_examples

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11+")

REPOSITORY = "https://github.com/nemo-mlx/nemo-mlx"  # where the members are published from
AUTHORS = [{"name": "the nemo-mlx authors"}]
CLASSIFIERS = {
    "Development Status :: 3 - Alpha",
    "Intended Audience :: Developers",
    "Operating System :: MacOS",
    "Operating System :: POSIX :: Linux",
    "Programming Language :: Python :: 3.10",
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
    "Programming Language :: Python :: 3.13",
    "Topic :: Multimedia :: Sound/Audio :: Speech",
    "Topic :: Scientific/Engineering :: Artificial Intelligence",
}
# Names a README may `pip install` that are not members: the tool the root README starts with.
# not members: uv (the installer), and the clients the server's examples use
NOT_MEMBERS_OK = {"uv", "openai", "websockets", "wyoming"}


def _project(member: Path) -> dict:
    return tomllib.loads((member / "pyproject.toml").read_text())["project"]


PROJECTS = {m: _project(m) for m in MEMBERS}
DISTRIBUTIONS = {canonicalize_name(p["name"]): m for m, p in PROJECTS.items()}


def _module(member: Path) -> str:
    return PROJECTS[member]["name"].replace("-", "_")


def _member_requirements(member: Path) -> set[str]:
    names = {canonicalize_name(Requirement(r).name) for r in PROJECTS[member]["dependencies"]}
    return names & DISTRIBUTIONS.keys()


def _member_closure(member: Path) -> set[str]:
    """This member and every member it needs, directly or not (distribution names)."""
    seen = {canonicalize_name(PROJECTS[member]["name"])}
    todo = list(_member_requirements(member))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += _member_requirements(DISTRIBUTIONS[name])
    return seen


# --- static checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: m.name)
def test_member_license_is_the_root_license(member):
    root = (ROOT / "LICENSE").read_text()
    assert root.startswith("MIT License")
    assert "the nemo-mlx authors" in root
    assert (member / "LICENSE").read_text() == root, f"{member.name}/LICENSE differs from LICENSE"


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: m.name)
def test_member_metadata(member):
    from trove_classifiers import classifiers as known

    project = PROJECTS[member]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert project["authors"] == AUTHORS
    assert project["description"]
    assert project["readme"] == "README.md"
    assert len(project.get("keywords", [])) >= 3
    classifiers = set(project["classifiers"])
    assert not classifiers - known, f"not on PyPI's list: {sorted(classifiers - known)}"
    assert classifiers >= CLASSIFIERS, f"missing: {sorted(CLASSIFIERS - classifiers)}"
    # PEP 639: with an SPDX `license` expression a License classifier is not allowed
    # (uv_build warns, other backends refuse)
    assert not [c for c in classifiers if c.startswith("License ::")]
    folder = member.relative_to(ROOT).as_posix()
    assert project["urls"] == {
        "Homepage": REPOSITORY,
        "Repository": REPOSITORY,
        "Issues": f"{REPOSITORY}/issues",
        "Documentation": f"{REPOSITORY}/tree/main/{folder}#readme",
    }


def _pip_installs(text: str) -> list[str]:
    """The requirement arguments of every `pip install ...` in a text (code and prose)."""
    found = []
    for args in re.findall(r"pip install\s+([^`#&|;\n]*)", text):
        found += [a for a in shlex.split(args) if not a.startswith("-")]
    return found


def test_readme_pip_install_lines_name_member_distributions():
    readmes = [ROOT / "README.md", *(m / "README.md" for m in MEMBERS)]
    seen = set()
    for readme in readmes:
        for arg in _pip_installs(readme.read_text()):
            req = Requirement(arg)
            name = canonicalize_name(req.name)
            seen.add((readme.parent, name))
            if name in NOT_MEMBERS_OK:
                continue
            where = readme.relative_to(ROOT)
            assert name in DISTRIBUTIONS, f"{where}: `pip install {arg}` is no member"
            extras = PROJECTS[DISTRIBUTIONS[name]].get("optional-dependencies", {})
            assert req.extras <= extras.keys(), f"{where}: `pip install {arg}`: no such extra"
    for member in MEMBERS:
        own = canonicalize_name(PROJECTS[member]["name"])
        assert (member, own) in seen, f"{member.name}/README.md has no `pip install {own}`"


def test_root_readme_table_names_each_distribution_and_import():
    text = (ROOT / "README.md").read_text()
    table = text.split("## Packages", 1)[1].split("\n\n", 2)[1]
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]
    ]
    by_folder = {row[0]: row for row in rows}
    for member in MEMBERS:
        folder = member.relative_to(ROOT).as_posix()
        row = by_folder.get(f"[`{folder}`]({folder})")
        assert row, f"no row for {folder} in the root README's Packages table"
        assert row[1:3] == [f"`{PROJECTS[member]['name']}`", f"`{_module(member)}`"], row
    header = table.splitlines()[0]
    assert "distribution" in header, header
    assert "import" in header, header


# --- built distributions ---------------------------------------------------------------------


def _env() -> dict[str, str]:
    """The environment for commands run outside the workspace's virtual environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env.pop("UV_PROJECT_ENVIRONMENT", None)
    env["MLX_CPU_BLAS_HINT"] = "off"
    return env


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, env=_env(), **kwargs)
    assert result.returncode == 0, f"{shlex.join(map(str, cmd))}\n{result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        pytest.skip("uv is not installed")
    return found


@pytest.fixture(scope="module")
def dist(uv, tmp_path_factory) -> Path:
    """Every member's wheel and sdist, from one `uv build`."""
    out = tmp_path_factory.mktemp("dist")
    _run([uv, "build", "--all-packages", "--quiet", "-o", str(out)], cwd=ROOT)
    return out


@pytest.fixture(scope="module")
def constraints(uv, tmp_path_factory) -> Path:
    """uv.lock's third-party versions, so that a fresh install matches the lock (and its cache)."""
    path = tmp_path_factory.mktemp("lock") / "constraints.txt"
    _run(
        [
            *(uv, "export", "--frozen", "--all-packages", "--no-emit-workspace", "--no-hashes"),
            *("--no-header", "--no-annotate", "--quiet", "-o", str(path)),
        ],
        cwd=ROOT,
    )
    return path


def _wheel(dist: Path, member: Path) -> Path:
    (wheel,) = dist.glob(f"{_module(member)}-{PROJECTS[member]['version']}-*.whl")
    return wheel


@pytest.fixture(scope="module")
def venv(uv, dist, constraints, tmp_path_factory):
    """venv(member): the bin/ of a fresh environment holding that member's wheel alone."""
    made: dict[Path, Path] = {}

    def make(member: Path) -> Path:
        if member not in made:
            root = tmp_path_factory.mktemp(f"venv-{member.name}")
            _run([uv, "venv", "--quiet", "--python", sys.executable, str(root)])
            python = root / "bin" / "python"
            wheel = _wheel(dist, member)
            _run(
                [
                    *(uv, "pip", "install", "--quiet", "--python", str(python), str(wheel)),
                    *("--find-links", str(dist), "--constraint", str(constraints)),
                ]
            )
            made[member] = root / "bin"
        return made[member]

    return make


def test_build_makes_a_wheel_and_an_sdist_per_member(dist):
    for member in MEMBERS:
        name, version = _module(member), PROJECTS[member]["version"]
        wheel = _wheel(dist, member)
        sdist = dist / f"{name}-{version}.tar.gz"
        assert sdist.is_file(), sorted(p.name for p in dist.iterdir())
        license = (ROOT / "LICENSE").read_bytes()
        with zipfile.ZipFile(wheel) as zf:
            assert zf.read(f"{name}-{version}.dist-info/licenses/LICENSE") == license
            assert f"{name}/__init__.py" in zf.namelist()
        with tarfile.open(sdist) as tf:
            assert tf.extractfile(f"{name}-{version}/LICENSE").read() == license


def test_serve_wheel_ships_its_page(dist):
    """`GET /` reads page/index.html from the package: the wheel must carry it."""
    member = ROOT / "apps/serve"
    page = (member / "src/nemo_mlx_serve/page/index.html").read_bytes()
    with zipfile.ZipFile(_wheel(dist, member)) as zf:
        assert zf.read("nemo_mlx_serve/page/index.html") == page


def test_twine_check_is_clean(dist):
    files = sorted(p for p in dist.iterdir() if p.name.endswith((".whl", ".tar.gz")))
    assert len(files) == 2 * len(MEMBERS)
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, files)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


_LIST_INSTALLED = """
import importlib, importlib.metadata as md, json, sys
module = importlib.import_module(sys.argv[1])
print(json.dumps({
    "file": module.__file__,
    "dists": {d.metadata["Name"]: d.version for d in md.distributions()},
}))
"""


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: m.name)
def test_wheel_installs_alone_and_imports(member, venv, tmp_path):
    bin_dir = venv(member)
    out = _run([str(bin_dir / "python"), "-c", _LIST_INSTALLED, _module(member)], cwd=tmp_path)
    found = json.loads(out.stdout)
    assert Path(found["file"]).is_relative_to(bin_dir.parent), found["file"]
    installed = {canonicalize_name(n): v for n, v in found["dists"].items()}
    members = {n for n in installed if n in DISTRIBUTIONS}
    # exactly the members it declares (directly or through them), each at its own version
    assert members == _member_closure(member)
    for name in members:
        assert installed[name] == PROJECTS[DISTRIBUTIONS[name]]["version"], name


EXAMPLES = [
    (member, i, code)
    for member in MEMBERS
    for i, code in enumerate(python_examples(member / "README.md"))
]


@pytest.mark.parametrize(
    ("member", "index", "code"), EXAMPLES, ids=[f"{m.name}-{i}" for m, i, _ in EXAMPLES]
)
def test_readme_example_runs_in_a_fresh_venv(member, index, code, venv, tmp_path):
    if needs_network(code):
        pytest.skip(f"{member.name}-{index}: the example downloads from the Hugging Face Hub")
    _run([str(venv(member) / "python"), "-c", code], cwd=tmp_path)


SCRIPTS = [(member, script) for member in MEMBERS for script in PROJECTS[member].get("scripts", {})]


def test_the_commands_are_the_expected_ones():
    assert sorted(s for _, s in SCRIPTS) == [
        "canary",
        "diarize",
        "nemo-mlx-convert",
        "nemo-mlx-serve",
        "parakeet",
    ]


@pytest.mark.parametrize(("member", "script"), SCRIPTS, ids=[s for _, s in SCRIPTS])
def test_console_script_help(member, script, venv, tmp_path):
    out = _run([str(venv(member) / script), "--help"], cwd=tmp_path)
    assert out.stdout.startswith("usage:"), out.stdout
