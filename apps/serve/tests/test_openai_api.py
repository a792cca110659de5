"""The server through the official `openai` client: the same text, words and times as the
`parakeet` and `canary` commands give for the same files, in every response format, streamed
and not; several models in one server; requests decoded together."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from server_process import ROOT, cli_outputs, running_server

AUDIO = ROOT / "tests" / "fixtures" / "audio"
CHECKPOINTS = ROOT / "tests" / "fixtures" / "checkpoints"
EXAMPLE = ROOT / "apps" / "parakeet" / "src" / "nemo_mlx_parakeet" / "demo" / "example.wav"
FILES = [EXAMPLE, AUDIO / "speech_16k_mono.wav", AUDIO / "speech_22k.flac",
         AUDIO / "speech_24k.mp3", AUDIO / "speech_44k_stereo.wav", AUDIO / "speech_48k.ogg"]  # fmt: skip
PARAKEET_FIXTURE = CHECKPOINTS / "parakeet-tdt_ctc-110m.nemo"
CANARY_FIXTURE = CHECKPOINTS / "canary-180m-flash.nemo"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def server(cache):
    """One server with the demo model and two fixture checkpoints, a model of each app."""
    with running_server(
        "--model", "demo",
        "--model", f"tdt-ctc={PARAKEET_FIXTURE}",
        "--model", f"canary={CANARY_FIXTURE}",
        "--cache-dir", str(cache), "--max-wait-ms", "200",
    ) as handle:  # fmt: skip
        yield handle


@pytest.fixture(scope="module")
def client(server) -> OpenAI:
    return server.client()


def transcribe(client: OpenAI, model: str, audio: Path, **options):
    with audio.open("rb") as handle:
        return client.audio.transcriptions.create(model=model, file=handle, **options)


def check_formats(client: OpenAI, model: str, audio: Path, cli: dict) -> None:
    """Every response format against the CLI's files for the same audio."""
    expected = json.loads(cli["json"])
    assert transcribe(client, model, audio).text == expected["text"]
    assert transcribe(client, model, audio, response_format="text") == cli["txt"]
    assert transcribe(client, model, audio, response_format="srt") == cli["srt"]
    assert transcribe(client, model, audio, response_format="vtt") == cli["vtt"]
    verbose = transcribe(client, model, audio, response_format="verbose_json",
                         timestamp_granularities=["word", "segment"])  # fmt: skip
    assert verbose.text == expected["text"]
    assert verbose.duration == expected["duration"]
    words = [{"word": w.word, "start": w.start, "end": w.end} for w in verbose.words]
    assert words == [
        {"word": w["text"], "start": w["start"], "end": w["end"]} for w in expected["words"]
    ]
    segments = [(s.text, s.start, s.end) for s in verbose.segments]
    assert segments == [(s["text"], s["start"], s["end"]) for s in expected["segments"]]


@pytest.mark.parametrize("audio", FILES, ids=lambda p: p.name)
def test_demo_model_matches_the_cli_in_every_format(client, cache, tmp_path, audio):
    cli = cli_outputs("parakeet", "demo", audio, tmp_path, cache)
    assert json.loads(cli["json"])["words"], "a clip without words proves little"
    check_formats(client, "demo", audio, cli)


def test_streamed_transcription_is_the_text_in_pieces(client, cache, tmp_path):
    expected = json.loads(cli_outputs("parakeet", "demo", EXAMPLE, tmp_path, cache)["json"])
    with EXAMPLE.open("rb") as handle:
        stream = client.audio.transcriptions.create(model="demo", file=handle, stream=True)
        events = list(stream)
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    assert len(deltas) == len(expected["words"])
    assert "".join(deltas) == expected["text"]
    assert events[-1].type == "transcript.text.done"
    assert events[-1].text == expected["text"]


def test_parakeet_fixture_checkpoint_matches_the_cli(client, cache, tmp_path):
    audio = AUDIO / "speech_16k_mono.wav"
    cli = cli_outputs("parakeet", str(PARAKEET_FIXTURE), audio, tmp_path, cache)
    check_formats(client, "tdt-ctc", audio, cli)


def test_canary_fixture_checkpoint_matches_the_cli(client, cache, tmp_path):
    """json and text as `canary`; srt, vtt and verbose_json as `canary --timestamps` (the
    timestamp prompt changes what the model writes, so it is asked for only there)."""
    audio = AUDIO / "speech_16k_mono.wav"
    plain = cli_outputs("canary", str(CANARY_FIXTURE), audio, tmp_path / "plain", cache)
    timed = cli_outputs(
        "canary", str(CANARY_FIXTURE), audio, tmp_path / "timed", cache, "--timestamps"
    )
    assert transcribe(client, "canary", audio).text == json.loads(plain["json"])["text"]
    assert transcribe(client, "canary", audio, response_format="text") == plain["txt"]
    assert transcribe(client, "canary", audio, response_format="srt") == timed["srt"]
    verbose = transcribe(client, "canary", audio, response_format="verbose_json",
                         timestamp_granularities=["word"])  # fmt: skip
    expected = json.loads(timed["json"])
    assert [(w.word, w.start, w.end) for w in verbose.words] == [
        (w["text"], w["start"], w["end"]) for w in expected["words"]
    ]


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # openai marks the endpoint so
def test_canary_translation_matches_the_cli(client, cache, tmp_path):
    audio = AUDIO / "speech_16k_mono.wav"
    cli = cli_outputs("canary", str(CANARY_FIXTURE), audio, tmp_path, cache,
                      "--source-lang", "de", "--target-lang", "en")  # fmt: skip
    with audio.open("rb") as handle:
        result = client.audio.translations.create(model="canary", file=handle,
                                                  extra_body={"language": "de"})  # fmt: skip
    assert result.text == json.loads(cli["json"])["text"]


def test_models_are_listed(client, server):
    listed = {m.id: m for m in client.models.list().data}
    assert set(listed) == {"demo", "tdt-ctc", "canary"}
    assert listed["canary"].model_extra["translation"] is True
    assert listed["demo"].model_extra["kind"] == "parakeet"
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"


def test_concurrent_requests_are_decoded_together_with_the_same_results(client, server):
    """Requests sent at once share rounds (the server waits up to 200 ms for company here),
    and each gets exactly what it gets alone."""
    alone = {p.name: transcribe(client, "demo", p, response_format="verbose_json",
                                timestamp_granularities=["word"]).model_dump() for p in FILES}  # fmt: skip
    before = httpx.get(f"{server.url}/health").json()["batches"]["demo"]
    with ThreadPoolExecutor(len(FILES) * 2) as pool:
        together = list(pool.map(
            lambda p: (p.name, transcribe(client, "demo", p, response_format="verbose_json",
                                          timestamp_granularities=["word"]).model_dump()),
            FILES * 2,
        ))  # fmt: skip
    after = httpx.get(f"{server.url}/health").json()["batches"]["demo"]
    for name, result in together:
        assert result == alone[name], name
    assert after["largest_round"] > 1
    assert after["rounds"] - before["rounds"] < len(together)


PROMPT_FIXTURE = CHECKPOINTS / "nemotron-3.5-asr-streaming-0.6b"


def test_a_language_prompt_model_takes_the_language_field(cache):
    """nemotron-3.5-asr-streaming-0.6b's fixture: the request's `language` is NeMo's
    `target_lang` (text equal to NeMo's `transcribe` in that language; `auto` when absent),
    `verbose_json` names it, and an unknown one is a 400 listing the model's languages."""
    import openai

    meta = json.loads(PROMPT_FIXTURE.with_name(PROMPT_FIXTURE.name + ".json").read_text())
    clip = "speech_16k_mono.wav"
    with running_server(
        "--model", f"nemotron={PROMPT_FIXTURE}.nemo", "--cache-dir", str(cache)
    ) as server:
        client = server.client()
        for language, entry in meta["languages"].items():
            options = {} if language == "auto" else {"language": language}
            verbose = transcribe(client, "nemotron", AUDIO / clip, response_format="verbose_json",
                                 **options)  # fmt: skip
            assert verbose.text == entry["transcribe"][clip]["text"], language
            assert verbose.language == language
        with pytest.raises(openai.BadRequestError) as refused:
            transcribe(client, "nemotron", AUDIO / clip, language="xx-XX")
        assert "'xx-XX' is not supported by this model; supported: en-US, en," in str(refused.value)


DEMO_FIXTURE = ROOT / "tests" / "fixtures" / "demo"
BIASING = json.loads((DEMO_FIXTURE / "biasing.json").read_text())
BOOSTED = BIASING["heads"]["rnnt"]["boost"]  # NeMo's transcripts with the phrases boosted
PLAIN = BIASING["heads"]["rnnt"]["plain"]


def boosted(client: OpenAI, clip: str, phrases: list[str] | None):
    """A held-out clip transcribed by the demo model, with `phrases` boosted (the server's
    `boost` form field, repeated; OpenAI's client sends it through extra_body)."""
    body = {"boost": phrases, "boost_alpha": BIASING["boosting_tree_alpha"]} if phrases else {}
    return transcribe(client, "demo", DEMO_FIXTURE / clip, extra_body=body).text


def test_boost_phrases_per_request_give_nemos_boosted_text(client):
    """The request's phrases change the words as NeMo's boosting tree does, and a request
    without phrases (or after one with them) is plain."""
    for clip in BOOSTED["changed"]:
        assert boosted(client, clip, BIASING["phrases"]) == BOOSTED["clips"][clip]["text"], clip
        assert boosted(client, clip, None) == PLAIN["clips"][clip]["text"], clip


def test_concurrent_requests_with_different_phrases_do_not_share_a_tree(client, server):
    """Requests sent at once with the phrases, with none and with other phrases: each is
    decoded with its own (rounds take only equal options), as when sent alone."""
    clips = BOOSTED["changed"][:3]
    jobs = [(c, p) for c in clips for p in (BIASING["phrases"], None, ["zebra crossing"])] * 2
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: boosted(client, *job), jobs))
    for (clip, phrases), text in zip(jobs, results, strict=True):
        if phrases == BIASING["phrases"]:
            assert text == BOOSTED["clips"][clip]["text"], clip
        elif phrases is None:
            assert text == PLAIN["clips"][clip]["text"], clip
        else:
            assert text == boosted(client, clip, phrases), clip


@pytest.mark.parametrize(
    ("model", "body", "message"),
    [
        ("demo", {"boost": ["anna"], "boost_alpha": -1}, "boost_alpha: Input should be greater"),
        ("demo", {"boost_alpha": 2}, "boost_score and boost_alpha need boost phrases"),
        ("demo", {"boost": ["anna", " "]}, "boost phrases must be non-empty text"),
    ],
)
def test_bad_boost_requests_are_one_clear_400(client, model, body, message):
    import openai

    with pytest.raises(openai.BadRequestError) as refused:
        transcribe(client, model, EXAMPLE, extra_body=body)
    assert message in str(refused.value)
