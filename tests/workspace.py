"""What the repository-wide tests share: the workspace members and their README examples.

Importable from any test module (`tests/` is on pytest's `pythonpath`).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = sorted(p.parent for p in ROOT.glob("packages/*/pyproject.toml")) + sorted(
    p.parent for p in ROOT.glob("apps/*/pyproject.toml")
)

# An example whose first line is this downloads a model: no network in CI, so it is skipped.
NEEDS_NETWORK = "# needs network"


def python_examples(readme: Path) -> list[str]:
    """The ```python blocks of a README, in order."""
    text = readme.read_text()
    return [block.split("\n```", 1)[0] for block in text.split("```python\n")[1:]]


def needs_network(code: str) -> bool:
    return code.startswith(NEEDS_NETWORK)
