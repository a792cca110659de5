"""The Wyoming server of the real server process, with wyoming's own client: `describe`
lists the models; a streamed utterance's transcript equals the same model's in-process
stream fed the same audio (any rate, width, channels); Canary's equals its whole-utterance
decoding; errors come as `error` events and a vanished client leaves the server serving."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info

from mlx_audio_frontend import load_audio, resample

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "apps" / "parakeet" / "src" / "nemo_mlx_parakeet" / "demo" / "example.wav"
CHECKPOINTS = REPO / "tests" / "fixtures" / "checkpoints"
MULTI = CHECKPOINTS / "stt_en_fastconformer_hybrid_large_streaming_multi.nemo"  # cache-aware
CANARY = REPO / "tests" / "fixtures" / "models" / "canary.nemo"  # does not stream


@pytest.fixture(scope="module")
def server(start_server, free_port, cache_dir):
    port = free_port()
    args = ["--model", "demo", "--model", f"multi={MULTI}", "--model", f"canary={CANARY}",
            "--cache-dir", str(cache_dir), "--wyoming-port", str(port), "--api-key", "http-only"]  # fmt: skip
    with start_server(*args) as (base, process):
        yield port, base, process


@pytest.fixture(scope="module")
def example() -> np.ndarray:
    return np.array(load_audio(EXAMPLE, 16000))


def pcm(samples: np.ndarray, rate: int, width: int, channels: int) -> bytes:
    """`samples` (16 kHz) at `rate`, as `width`-byte PCM with the signal in every channel."""
    samples = np.clip(resample(samples, 16000, rate), -1, 1 - 2**-15)
    if width == 2:
        data = (samples * 2**15).astype("<i2")
    else:
        data = (samples.astype(np.float64) * 2**31).astype("<i4")
    return np.repeat(data, channels).tobytes()


def received(data: bytes, rate: int, width: int, channels: int) -> np.ndarray:
    """What the server must hear: the PCM as mono float at 16 kHz."""
    ints = np.frombuffer(data, "<i2" if width == 2 else "<i4")
    samples = ints.astype(np.float32) / float(2 ** (8 * width - 1))
    samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return resample(samples, rate, 16000)


async def send_audio(client, data: bytes, rate: int, width: int, channels: int, seconds=0.1):
    step = int(rate * seconds) * width * channels
    await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
    for start in range(0, len(data), step):
        chunk = AudioChunk(
            rate=rate, width=width, channels=channels, audio=data[start : start + step]
        )
        await client.write_event(chunk.event())
    await client.write_event(AudioStop().event())


async def read(client):
    event = await asyncio.wait_for(client.read_event(), timeout=60)
    assert event is not None, "the server closed the connection"
    return event


async def read_transcript(client) -> tuple[str, list[str]]:
    """Wyoming's streamed answer: `transcript-start`, `transcript-chunk`s, `transcript`,
    `transcript-stop`, in that order; (the transcript's text, the chunks' texts)."""
    assert TranscriptStart.is_type((await read(client)).type)
    chunks = []
    while TranscriptChunk.is_type((event := await read(client)).type):
        chunks.append(TranscriptChunk.from_event(event).text)
    assert Transcript.is_type(event.type), event
    assert TranscriptStop.is_type((await read(client)).type)
    return Transcript.from_event(event).text, chunks


async def transcribe(port: int, model: str | None, data: bytes, *fmt: int, language=None) -> str:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(name=model, language=language).event())
        await send_audio(client, data, *fmt)
        text, chunks = await read_transcript(client)
        if model != "canary":  # Parakeet streams: the chunks are the text as it became final
            assert len(chunks) > 1
            assert "".join(chunks) == text
        else:  # Canary has its text only at audio-stop
            assert chunks == []
        return text


def test_describe_lists_the_models(server):
    port, _, _ = server

    async def run():
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            return Info.from_event(await read(client))

    info = asyncio.run(run())
    (program,) = info.asr
    models = {m.name: m for m in program.models}
    assert list(models) == ["demo", "multi", "canary"]
    assert "en" in models["canary"].languages
    assert models["demo"].languages == []  # Parakeet checkpoints do not say
    assert program.supports_transcript_streaming


@pytest.mark.parametrize(
    ("model", "ref", "fmt"),
    [
        ("demo", "demo", (16000, 2, 1)),
        ("multi", str(MULTI), (22050, 4, 2)),
        (None, "demo", (48000, 2, 2)),
    ],
)
def test_transcript_equals_the_in_process_stream(
    server, example, stream_reference, model, ref, fmt
):
    port, _, _ = server
    data = pcm(example, *fmt)
    expected = stream_reference(ref, received(data, *fmt))
    assert expected.strip()
    assert asyncio.run(transcribe(port, model, data, *fmt)) == expected


def test_canary_is_decoded_whole_at_audio_stop(server, example, cache_dir):
    import nemo_mlx_canary as canary

    port, _, _ = server
    fmt = (16000, 2, 1)
    data = pcm(example, *fmt)
    model = canary.load(CANARY, cache_dir=cache_dir, verbose=False)
    (expected,) = model.transcribe([received(data, *fmt)], source_lang="en", target_lang="en",
                                   timestamps=False, batch_size=8)  # fmt: skip
    assert asyncio.run(transcribe(port, "canary", data, *fmt, language="en")) == expected.text


def test_errors_are_events_and_the_connection_goes_on(server, example, stream_reference):
    port, _, _ = server
    fmt = (16000, 2, 1)
    data = pcm(example, *fmt)

    async def run():
        codes = []
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Transcribe(name="nope").event())
            codes.append(Error.from_event(await read(client)).code)
            await client.write_event(Transcribe(name="canary", language="xx").event())
            codes.append(Error.from_event(await read(client)).code)
            await client.write_event(AudioStop().event())
            codes.append(Error.from_event(await read(client)).code)
            await client.write_event(
                AudioChunk(rate=16000, width=3, channels=1, audio=b"\0" * 6).event()
            )
            codes.append(Error.from_event(await read(client)).code)
            await client.write_event(
                AudioChunk(rate=16000, width=2, channels=1, audio=b"\0" * 3).event()
            )
            codes.append(Error.from_event(await read(client)).code)
            await client.write_event(Transcribe(name="demo").event())
            await send_audio(client, data, *fmt)
            return codes, (await read_transcript(client))[0]

    codes, text = asyncio.run(run())
    assert codes == [
        "model_not_found",
        "invalid_language",
        "empty_audio",
        "invalid_audio",
        "invalid_audio",
    ]
    assert text == stream_reference("demo", received(data, *fmt))


def test_a_client_that_vanishes_mid_stream_costs_nothing(server, example, stream_reference):
    port, _, process = server
    fmt = (16000, 2, 1)
    data = pcm(example, *fmt)

    async def vanish():
        client = AsyncTcpClient("127.0.0.1", port)
        await client.connect()
        await client.write_event(Transcribe(name="multi").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        half = len(data) // 4 * 2
        await client.write_event(
            AudioChunk(rate=16000, width=2, channels=1, audio=data[:half]).event()
        )
        await client.disconnect()

    for _ in range(3):
        asyncio.run(vanish())
    text = asyncio.run(transcribe(port, "multi", data, *fmt))
    assert text == stream_reference(str(MULTI), received(data, *fmt))
    assert process.poll() is None


def test_a_busy_wyoming_port_fails_in_one_line_before_loading(free_port):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        command = [sys.executable, "-m", "nemo_mlx_serve.cli", "--model", "demo",
                   "--port", str(free_port()), "--wyoming-port", str(port)]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"nemo-mlx-serve: error: --wyoming-port {port}: cannot listen on 127.0.0.1: "
        "Address already in use"
    ]


def test_connections_beyond_max_streams_get_an_error_until_one_closes(start_server, free_port):
    port = free_port()

    async def run() -> tuple[str | None, Info]:
        async with AsyncTcpClient("127.0.0.1", port) as first:
            await first.write_event(Describe().event())
            await read(first)  # the first connection is served
            async with AsyncTcpClient("127.0.0.1", port) as second:
                refused = Error.from_event(await read(second)).code
        async with AsyncTcpClient("127.0.0.1", port) as again:  # room again
            await again.write_event(Describe().event())
            return refused, Info.from_event(await read(again))

    with start_server("--model", "demo", "--wyoming-port", str(port), "--max-streams", "1"):
        refused, info = asyncio.run(run())
    assert refused == "too_many_sessions"
    assert [m.name for m in info.asr[0].models] == ["demo"]
