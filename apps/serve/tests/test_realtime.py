"""The realtime WebSocket route of the real server, with a real WebSocket client: the final
text equals the same model's in-process stream fed the same audio; bad events, unknown
models, wrong keys and clients that vanish get their answers and leave the server serving."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from pathlib import Path

import httpx
import numpy as np
import pytest
import websockets

from mlx_audio_frontend import load_audio, resample

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "apps" / "parakeet" / "src" / "nemo_mlx_parakeet" / "demo" / "example.wav"
CHECKPOINTS = REPO / "tests" / "fixtures" / "checkpoints"
MULTI = CHECKPOINTS / "stt_en_fastconformer_hybrid_large_streaming_multi.nemo"  # cache-aware
CANARY = REPO / "tests" / "fixtures" / "models" / "canary.nemo"  # does not stream
EOU = CHECKPOINTS / "parakeet_realtime_eou_120m-v1.nemo"  # end-of-utterance markers
EOU_CLIP = [("speech_16k_mono.wav", 0, None), ("silence_padded_16k.wav", 0, None),
            ("odd_length_16k.wav", 0, None)]  # the EOU fixture's `long` clip  # fmt: skip
END = "conversation.item.input_audio_transcription.end_of_utterance"

KEY = "test-key"
RATE = 24000
PIECE = RATE // 10  # samples per append: 0.1 s
DELTA = "conversation.item.input_audio_transcription.delta"


@pytest.fixture(scope="module")
def server(start_server, cache_dir):
    args = ["--model", "demo", "--model", f"multi={MULTI}", "--model", f"canary={CANARY}",
            "--model", f"eou={EOU}", "--cache-dir", str(cache_dir), "--api-key", KEY]  # fmt: skip
    with start_server(*args) as (base, process):
        yield base.replace("http://", "ws://") + "/v1/realtime?intent=transcription", process


@pytest.fixture(scope="module")
def pcm() -> bytes:
    """The example at OpenAI's realtime rate, as PCM16 little-endian mono."""
    return as_pcm(np.array(load_audio(EXAMPLE, 16000)))


def as_pcm(samples: np.ndarray) -> bytes:
    """16 kHz samples at OpenAI's realtime rate, as PCM16 little-endian mono."""
    samples = resample(samples, 16000, RATE)
    return (np.clip(samples, -1, 1 - 2**-15) * 32768).astype("<i2").tobytes()


def received(pcm: bytes) -> np.ndarray:
    """The audio the server's model receives for `pcm`, at its 16 kHz."""
    return resample(np.frombuffer(pcm, "<i2").astype(np.float32) / 32768, RATE, 16000)


def reference(stream_reference, ref: str, pcm: bytes) -> str:
    """What the model's own stream gives for the audio the server receives."""
    return stream_reference(ref, received(pcm))


def connect(url: str, key: str | None = KEY):
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return websockets.connect(url, additional_headers=headers, max_size=None)


async def receive(ws, kind: str | None = None) -> dict:
    """The next event (of type `kind`, passing over the deltas that appends bring)."""
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
        if kind is None or event["type"] != DELTA or kind == DELTA:
            break
    if kind is not None:
        assert event["type"] == kind, event
    return event


async def open_session(ws, model: str) -> None:
    created = await receive(ws, "transcription_session.created")
    assert created["session"]["input_audio_format"] == "pcm16"
    await ws.send(json.dumps({"type": "transcription_session.update", "session": {
        "input_audio_format": "pcm16", "turn_detection": None,
        "input_audio_transcription": {"model": model, "language": "en"}}}))  # fmt: skip
    updated = await receive(ws, "transcription_session.updated")
    assert updated["session"]["input_audio_transcription"]["model"] == model


async def append(ws, pcm: bytes, piece: int = PIECE) -> None:
    for start in range(0, len(pcm), 2 * piece):
        audio = base64.b64encode(pcm[start : start + 2 * piece]).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))


async def commit(ws, previous: str | None = None) -> tuple[str, list[str], list[dict]]:
    """Commit; returns (transcript, deltas, the other events seen) once it is completed."""
    await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
    deltas, others, committed = [], [], None
    while True:
        event = await receive(ws)
        if event["type"] == DELTA:
            deltas.append(event["delta"])
        elif event["type"] == "input_audio_buffer.committed":
            committed = event
            assert event["previous_item_id"] == previous
        elif event["type"] == "conversation.item.input_audio_transcription.completed":
            assert committed is not None
            assert event["item_id"] == committed["item_id"]
            assert event["content_index"] == 0
            return event["transcript"], deltas, others
        else:
            others.append(event)


async def transcribe(url: str, model: str, pcm: bytes, piece: int = PIECE) -> tuple[str, list[str]]:
    async with connect(url) as ws:
        await open_session(ws, model)
        await append(ws, pcm, piece)
        text, deltas, others = await commit(ws)
        assert all(e["type"] != "error" for e in others), others
        return text, deltas


@pytest.mark.parametrize(("model", "ref"), [("demo", "demo"), ("multi", str(MULTI))])
def test_transcript_equals_the_in_process_stream(server, pcm, stream_reference, model, ref):
    url, _ = server
    expected = reference(stream_reference, ref, pcm)
    assert expected.strip()
    text, deltas = asyncio.run(transcribe(url, model, pcm, piece=PIECE + 37))  # odd pieces
    assert text == expected
    assert "".join(deltas) == text


def test_end_of_utterance_events_are_the_in_process_streams(server, streamed):
    """An end-of-utterance checkpoint: one `...end_of_utterance` event per marker the
    model's own stream reports for the same audio (kind, frame, time, text), with the item."""
    url, _ = server
    audio = REPO / "tests" / "fixtures" / "audio"
    pcm = as_pcm(np.concatenate([np.array(load_audio(audio / f))[a:b] for f, a, b in EOU_CLIP]))
    transcript, stream = streamed(str(EOU), received(pcm))
    expected = [(m.kind, round(m.time * 1000), m.frame, m.text) for m in stream.end_of_utterances]
    assert expected, "the clip must hold a marker"

    async def run():
        async with connect(url) as ws:
            await open_session(ws, "eou")
            await append(ws, pcm)
            return await commit(ws)

    text, _deltas, others = asyncio.run(run())
    assert all(e["type"] != "error" for e in others), others
    assert text == transcript.text
    events = [e for e in others if e["type"] == END]
    assert [(e["kind"], e["audio_end_ms"], e["frame"], e["transcript"]) for e in events] == expected
    assert {e["content_index"] for e in events} == {0}
    assert len({e["item_id"] for e in events}) == 1


def test_concurrent_sessions_share_the_models(server, pcm, stream_reference):
    url, _ = server

    async def both():
        return await asyncio.gather(transcribe(url, "demo", pcm), transcribe(url, "multi", pcm),
                                    transcribe(url, "demo", pcm, piece=977))  # fmt: skip

    results = asyncio.run(both())
    demo, multi = (
        reference(stream_reference, "demo", pcm),
        reference(stream_reference, str(MULTI), pcm),
    )
    assert [text for text, _ in results] == [demo, multi, demo]


def test_two_utterances_in_one_session(server, pcm, stream_reference):
    url, _ = server
    half = len(pcm) // 2 // 2 * 2

    async def run():
        async with connect(url) as ws:
            await open_session(ws, "demo")
            await append(ws, pcm[:half])
            first, _, _ = await commit(ws)
            await append(ws, pcm[: PIECE * 2])
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
            await receive(ws, "input_audio_buffer.cleared")
            await append(ws, pcm[half:])
            created = None
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            while (
                created is None
                or created["type"] != "conversation.item.input_audio_transcription.completed"
            ):
                created = await receive(ws)
                if created["type"] == "input_audio_buffer.committed":
                    assert created["previous_item_id"] is not None
            return first, created["transcript"]

    first, second = asyncio.run(run())
    assert first == reference(stream_reference, "demo", pcm[:half])
    assert second == reference(stream_reference, "demo", pcm[half:])


BAD_EVENTS = [
    ("not json", "invalid_json"),
    (json.dumps([1, 2]), "invalid_event"),
    (json.dumps({"type": "response.create"}), "unknown_event"),
    (json.dumps({"type": "input_audio_buffer.append", "audio": "@@not base64@@"}), "invalid_audio"),
    (json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()}),
     "invalid_audio"),
    (json.dumps({"type": "input_audio_buffer.append", "audio": 5}), "invalid_value"),
    (json.dumps({"type": "transcription_session.update", "session": "x"}), "invalid_value"),
    (json.dumps({"type": "transcription_session.update", "session": {"input_audio_format": "g711_ulaw"}}),
     "invalid_value"),
    (json.dumps({"type": "transcription_session.update", "session": {"turn_detection": {"type": "server_vad"}}}),
     "invalid_value"),
    (json.dumps({"type": "transcription_session.update",
                 "session": {"input_audio_transcription": {"model": "nope"}}}), "model_not_found"),
    (json.dumps({"type": "transcription_session.update",
                 "session": {"input_audio_transcription": {"model": "canary"}}}), "model_not_streaming"),
    (b"\x00\x01binary", "invalid_event"),
    (json.dumps({"type": "input_audio_buffer.append", "audio": "A" * (5 * 2**20)}), "event_too_large"),
]  # fmt: skip


def test_bad_events_get_an_error_and_the_session_goes_on(server, pcm, stream_reference):
    url, _ = server

    async def run():
        codes = []
        async with connect(url) as ws:
            await open_session(ws, "demo")
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            codes.append((await receive(ws, "error"))["error"]["code"])
            await append(ws, pcm[: len(pcm) // 2 // 2 * 2])
            for frame, _ in BAD_EVENTS:
                await ws.send(frame)
                event = await receive(ws, "error")
                error = event["error"]
                assert error["type"] == "invalid_request_error"
                assert error["message"]
                assert "\n" not in error["message"]
                codes.append(error["code"])
            await ws.send(json.dumps({"type": "bogus", "event_id": "evt_1"}))
            assert (await receive(ws, "error"))["error"]["event_id"] == "evt_1"
            # the audio appended before the bad events is still there; the session still demo
            await append(ws, pcm[len(pcm) // 2 // 2 * 2 :])
            text, _, _ = await commit(ws)
        return codes, text

    codes, text = asyncio.run(run())
    assert codes == ["input_audio_buffer_commit_empty"] + [code for _, code in BAD_EVENTS]
    assert text == reference(stream_reference, "demo", pcm)


def test_wrong_or_missing_key_is_refused_before_the_handshake(server):
    url, _ = server

    async def status(key: str | None) -> int:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(url, key):
                pass
        return refused.value.response.status_code

    assert asyncio.run(status("wrong")) == 401
    assert asyncio.run(status(None)) == 401


def test_sessions_beyond_max_streams_are_refused_until_one_closes(start_server):
    async def run(base: str) -> tuple[int, int, str]:
        url = base.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
        async with connect(url, None) as first:
            await receive(first, "transcription_session.created")
            open_streams = httpx.get(f"{base}/health").json()["streams"]
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with connect(url, None):
                    pass
        async with connect(url, None) as again:  # the first one closed: room again
            created = await receive(again, "transcription_session.created")
        return open_streams, refused.value.response.status_code, created["type"]

    with start_server("--model", "demo", "--max-streams", "1") as (base, _):
        assert asyncio.run(run(base)) == (1, 429, "transcription_session.created")


def test_a_client_that_vanishes_mid_stream_costs_nothing(server, pcm, stream_reference):
    url, process = server

    async def vanish():
        ws = await connect(url)
        await open_session(ws, "multi")
        await append(ws, pcm[: len(pcm) // 2 // 2 * 2])
        ws.transport.abort()  # no close handshake: the socket just goes

    for _ in range(3):
        asyncio.run(vanish())
    text, _ = asyncio.run(transcribe(url, "multi", pcm))
    assert text == reference(stream_reference, str(MULTI), pcm)
    health = url.replace("ws://", "http://").split("/v1/")[0] + "/health"
    with urllib.request.urlopen(health, timeout=10) as response:
        assert json.load(response)["status"] == "ok"
    assert process.poll() is None


def test_buffer_limit_then_idle_close(start_server, cache_dir, pcm, stream_reference):
    """An utterance holds at most --max-audio-seconds; a silent session is closed."""
    args = ["--model", "demo", "--cache-dir", str(cache_dir), "--max-audio-seconds", "1",
            "--idle-timeout", "2"]  # fmt: skip
    part = pcm[: 2 * int(0.6 * RATE)]

    async def run(url: str) -> tuple[str, str, dict, int | None]:
        async with websockets.connect(url) as ws:
            await receive(ws, "transcription_session.created")
            await append(ws, part)
            await append(ws, part, piece=len(part))  # one event: 1.2 s in all, refused
            full = (await receive(ws, "error"))["error"]["code"]
            text, _, others = await commit(ws)  # the first 0.6 s
            assert [e["type"] for e in others] == ["conversation.item.created"]
            idle = await asyncio.wait_for(receive(ws, "error"), timeout=30)
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), timeout=10)
            return full, text, idle, ws.close_code

    with start_server(*args) as (base, _):
        full, text, idle, code = asyncio.run(run(base.replace("http://", "ws://") + "/v1/realtime"))
    assert full == "input_audio_buffer_full"
    assert text == reference(stream_reference, "demo", part)
    assert idle["error"]["code"] == "idle_timeout"
    assert code == 1000
