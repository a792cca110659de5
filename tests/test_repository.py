"""Repository-wide checks that belong to the test command: lint, format, layout."""

from __future__ import annotations

import subprocess
import sys

import pytest
from workspace import MEMBERS, ROOT, needs_network, python_examples

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11+")


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_ruff_lint_is_clean():
    result = _ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = _ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_all_members_exist():
    names = {m.name for m in MEMBERS}
    assert names == {
        "mlx-audio-frontend",
        "mlx-cpu-runtime",
        "mlx-conformer",
        "mlx-asr-fusion",
        "mlx-transducer",
        "mlx-ctc-decoder",
        "mlx-seq2seq-decoder",
        "mlx-frame-vad",
        "mlx-diarization",
        "nemo-mlx-convert",
        "speech-transcript",
        "speech-corpus",
        "parakeet",
        "canary",
        "serve",
        "diarize",
    }


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: m.name)
def test_member_is_a_publishable_src_layout_package(member):
    project = tomllib.loads((member / "pyproject.toml").read_text())["project"]
    module = project["name"].replace("-", "_")
    assert (member / "src" / module / "__init__.py").is_file()
    assert (member / "README.md").is_file()
    assert (member / "tests").is_dir()
    assert project["version"]
    for dep in project.get("dependencies", []):
        # torch and NeMo stay out of every runtime dependency set (the `reference` group has them)
        assert not dep.lower().startswith(("torch", "nemo-toolkit", "nemo_toolkit")), dep
        if dep.startswith("mlx") and "[" in dep.split(";")[0]:
            assert "sys_platform == 'linux'" in dep, f"{dep}: MLX extras are Linux-only"


def _python_examples() -> list[tuple[str, str]]:
    return [
        (f"{readme.parent.name}-{i}", code)
        for readme in [ROOT / "README.md", *(m / "README.md" for m in MEMBERS)]
        for i, code in enumerate(python_examples(readme))
    ]


@pytest.mark.parametrize(
    ("name", "code"), _python_examples(), ids=[n for n, _ in _python_examples()]
)
def test_readme_examples_run(name, code, tmp_path):
    """Docs match the code: every Python example in a README runs as written.

    An example whose first line is `# needs network` downloads a model; there is no
    network in CI, so it is skipped, saying so.
    """
    if needs_network(code):
        pytest.skip(f"{name}: the example downloads from the Hugging Face Hub")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
