"""Phrase boosting and LM fusion end to end on the bundled demo model: the `parakeet` command
with --boost-phrase / --lm gives NeMo's transcripts, token for token, on the held-out clips.

NeMo's transcripts come from tests/reference/make_demo_biasing_fixture.py (NeMo 3.0.0's
`transcribe` on the same `.nemo` and FLAC clips, greedy_batch with `greedy.boosting_tree`
or `greedy.ngram_lm_model`, each head); there the boosted words change the text of several
clips (a fixture in which nothing changes would prove nothing).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from demo_cli import check_cli_clips

from nemo_mlx_parakeet import demo

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "demo"
BIASING = json.loads((FIXTURE / "biasing.json").read_text())
HELDOUT = json.loads((FIXTURE / "heldout.json").read_text())
FILES = [clip["file"] for clip in HELDOUT["clips"]]
CASES = [(head, name) for head in ("rnnt", "ctc") for name in ("boost", "lm")]


def options(name: str) -> list[str]:
    """The command-line options of a fixture setting."""
    if name == "boost":
        phrases = [arg for p in BIASING["phrases"] for arg in ("--boost-phrase", p)]
        return [*phrases, "--boost-alpha", str(BIASING["boosting_tree_alpha"])]
    return ["--lm", str(FIXTURE / BIASING["lm"]["file"]), "--lm-alpha",
            str(BIASING["lm"]["alpha"])]  # fmt: skip


def test_fixture_is_for_the_bundled_model_and_shows_changes():
    assert hashlib.sha256(demo.MODEL.read_bytes()).hexdigest() == BIASING["model_sha256"]
    for head, name in CASES:
        assert BIASING["heads"][head][name]["changed"], (head, name)


@pytest.mark.parametrize(("head", "name"), CASES)
def test_cli_equals_nemo(tmp_path, head, name):
    check_cli_clips(tmp_path, head, options(name), FIXTURE, FILES,
                    BIASING["heads"][head][name]["clips"], (head, name))  # fmt: skip
