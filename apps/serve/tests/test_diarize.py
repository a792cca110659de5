"""Speakers through the official `openai` client: a server started with `--diarize` gives
`verbose_json` words and segments a `speaker` when the request's `diarize` field asks, the
same as `parakeet --diarize` writes for the same file; without the field, nothing changes.

The diarizer is the NeMo-built Sortformer fixture on its three-voice `long` clip (NeMo's turns
in the fixture's JSON; apps/parakeet/tests/test_diarize.py holds the CLI to them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openai
import pytest
import soundfile
from openai import OpenAI
from server_process import ROOT, cli_outputs, running_server

FIXTURES = ROOT / "tests" / "fixtures"
DIARIZER = FIXTURES / "checkpoints" / "diar_sortformer_4spk-v1.nemo"
META = json.loads((FIXTURES / "checkpoints" / "diar_sortformer_4spk-v1.json").read_text())


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> Path:
    """The Sortformer fixture's `long` clip: its 16-bit pieces end to end, as 16-bit PCM."""
    pieces = [soundfile.read(FIXTURES / "audio" / f, dtype="int16")[0][a:b]
              for f, a, b in META["clips"]["long"]]  # fmt: skip
    path = tmp_path_factory.mktemp("audio") / "voices.wav"
    soundfile.write(path, np.concatenate(pieces), 16000, subtype="PCM_16")
    return path


def test_verbose_json_words_and_segments_carry_the_clis_speakers(voices, tmp_path):
    cache = tmp_path / "cache"
    cli = json.loads(
        cli_outputs(
            "parakeet", "demo", voices, tmp_path / "cli", cache, "--diarize", str(DIARIZER)
        )["json"]
    )
    assert len({w["speaker"] for w in cli["words"]}) > 1, "several speakers in the clip"
    with running_server(
        "--model", "demo", "--diarize", str(DIARIZER), "--cache-dir", str(cache)
    ) as server:  # fmt: skip
        client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)

        def ask(**options):
            with voices.open("rb") as handle:
                return client.audio.transcriptions.create(
                    model="demo", file=handle, response_format="verbose_json",
                    timestamp_granularities=["word", "segment"], **options,
                )  # fmt: skip

        verbose = ask(extra_body={"diarize": "true"})
        words = [(w.word, w.start, w.end, w.model_extra["speaker"]) for w in verbose.words]
        assert words == [(w["text"], w["start"], w["end"], w["speaker"]) for w in cli["words"]]
        segments = [(s.text, s.start, s.end, s.model_extra["speaker"]) for s in verbose.segments]
        assert segments == [(s["text"], s["start"], s["end"], s["speaker"])
                            for s in cli["segments"]]  # fmt: skip
        plain = ask()
        assert not any("speaker" in (w.model_extra or {}) for w in plain.words)
        assert plain.text == verbose.text


def test_diarize_on_a_server_without_a_diarizer_is_a_400(voices, tmp_path):
    with running_server("--model", "demo", "--cache-dir", str(tmp_path)) as server:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        with voices.open("rb") as handle, pytest.raises(openai.BadRequestError) as refused:
            client.audio.transcriptions.create(model="demo", file=handle,
                                               extra_body={"diarize": "true"})  # fmt: skip
    assert "start it with --diarize" in str(refused.value)
