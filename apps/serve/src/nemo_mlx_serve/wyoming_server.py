"""Home Assistant's Wyoming protocol: `describe` -> `info`, and `transcribe`, `audio-start`,
`audio-chunk`s, `audio-stop` -> `transcript`, on a TCP port of its own.

It runs on uvicorn's event loop (started by the app's lifespan), so it shares the compute
thread and the models with the HTTP routes. Parakeet models stream: each chunk goes into
the model's stream as it arrives, so the transcript is ready soon after `audio-stop`.
Canary models do not stream: their audio is kept (within the seconds limit) and decoded
whole at `audio-stop` by the model's batcher, as an upload would be."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.server import AsyncEventHandler, AsyncTcpServer

from .errors import APIError
from .models import Options, Recognizer
from .pcm import PCMError, pcm_to_float
from .streams import BufferedTranscription, LiveTranscription, Transcription

if TYPE_CHECKING:
    from .app import Service

MAX_HEADER_BYTES = 64 * 1024  # one event's JSON line
MAX_PART_BYTES = 4 * 2**20  # its data or payload (an audio chunk); larger: disconnected

log = logging.getLogger("nemo_mlx_serve.wyoming")


class WyomingError(Exception):
    """An event that cannot be served; becomes one `error` event."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


def describe(service: Service) -> Info:
    """The served models as one ASR program (languages where the model says)."""
    from . import __version__

    nvidia = Attribution(name="NVIDIA NeMo", url="https://github.com/NVIDIA/NeMo")
    models = [
        AsrModel(name=r.name, attribution=nvidia, installed=True, version=None,
                 description=f"{r.kind} ({r.ref}){'' if r.kind == 'parakeet' else ', not streamed'}",
                 languages=list(r.languages))
        for r in service.models.values()
    ]  # fmt: skip
    program = AsrProgram(
        name="nemo-mlx-serve", installed=True, version=__version__, models=models,
        description="NVIDIA Parakeet and Canary models on MLX",
        supports_transcript_streaming=True,
        attribution=Attribution(name="nemo-mlx", url="https://github.com/nemo-mlx/nemo-mlx"),
    )  # fmt: skip
    return Info(asr=[program])


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The wyoming wire format (a JSON line, then optional data and payload), read within
    limits: `wyoming.event.async_read_event` would read any length a client claims."""
    line = await reader.readline()
    if not line:
        return None
    header = json.loads(line)
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ValueError("an event header is a JSON object with a string `type`")
    data = header.get("data") or {}
    parts = []
    for key in ("data_length", "payload_length"):
        length = header.get(key) or 0
        if not isinstance(length, int) or not 0 <= length <= MAX_PART_BYTES:
            raise ValueError(f"{key} {length!r} is over the limit of {MAX_PART_BYTES} bytes")
        parts.append(await reader.readexactly(length) if length else None)
    if parts[0] is not None:
        data = {**data, **json.loads(parts[0])}
    return Event(type=header["type"], data=data, payload=parts[1])


class WyomingHandler(AsyncEventHandler):
    """One client connection: its chosen model and the utterance being received."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, service) -> None:
        super().__init__(reader, writer)
        self.service = service
        self.model: str | None = None  # from `transcribe`; else the first served model
        self.language: str | None = None
        self.utterance: Transcription | None = None
        self.format: tuple[int, int, int] | None = None  # (rate, width, channels)
        self.streaming = False  # `transcript-start` sent for the utterance being received

    async def run(self) -> None:
        """Events until the client leaves, sends a malformed event or is idle too long."""
        idle = self.service.settings.idle_timeout
        if (full := self.service.open_stream()) is not None:
            await self.fail(WyomingError(full.code or "too_many_sessions", full.message))
            self.writer.close()
            return
        try:
            while True:
                try:
                    event = await asyncio.wait_for(read_event(self.reader), timeout=idle)
                except asyncio.TimeoutError:
                    await self.fail(WyomingError("idle_timeout", f"no event for {idle:g} s"))
                    break
                except (ValueError, asyncio.IncompleteReadError) as err:
                    message = (str(err).splitlines() or [type(err).__name__])[0]
                    await self.fail(WyomingError("invalid_event", f"malformed event: {message}"))
                    break
                if event is None or not await self.handle_event(event):
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            self.service.close_stream()
            await self.disconnect()
            self.writer.close()

    async def handle_event(self, event: Event) -> bool:
        try:
            if Describe.is_type(event.type):
                await self.write_event(describe(self.service).event())
            elif Transcribe.is_type(event.type):
                await self.transcribe(Transcribe.from_event(event))
            elif AudioStart.is_type(event.type):
                await self.drop()
                self.begin(AudioStart.from_event(event))
            elif AudioChunk.is_type(event.type):
                await self.chunk(AudioChunk.from_event(event))
            elif AudioStop.is_type(event.type):
                await self.stop_audio()
            # other events (ping, wake words, ...) are not for an ASR service: ignored
        except WyomingError as err:
            await self.drop()
            await self.fail(err)
        except (KeyError, TypeError, ValueError) as err:  # an event without its fields
            await self.drop()
            await self.fail(
                WyomingError("invalid_event", f"malformed {event.type!r} event: {err!r}")
            )
        except (ConnectionError, OSError):
            raise
        except Exception as err:  # a fault of ours: the utterance is lost, not the server
            log.exception("wyoming %s", event.type)
            await self.drop()
            await self.fail(WyomingError("internal_error", f"internal error: {type(err).__name__}"))
        return True

    async def fail(self, err: WyomingError) -> None:
        await self.write_event(Error(text=err.text, code=err.code).event())

    async def disconnect(self) -> None:
        await self.drop()

    async def transcribe(self, request: Transcribe) -> None:
        recognizer = self.recognizer(request.name)
        self.options(recognizer, request.language)  # a bad language fails now, not after the audio
        self.model, self.language = recognizer.name, request.language

    def recognizer(self, name: str | None) -> Recognizer:
        name = name or self.model or next(iter(self.service.models))
        if len(name) > 128:  # no served name is longer; the message quotes the name
            raise WyomingError("model_not_found", "no served model has a name that long")
        try:
            return self.service.get(name)
        except APIError as err:
            raise WyomingError("model_not_found", err.message) from None

    def options(self, recognizer: Recognizer, language: str | None = None) -> Options:
        try:
            return recognizer.check(Options(language=language, timestamps=False))
        except APIError as err:
            raise WyomingError("invalid_language", err.message) from None

    def begin(self, start: AudioStart | AudioChunk) -> None:
        """An utterance at the format `start` states."""
        if start.width not in (1, 2, 4) or start.channels < 1 or start.rate <= 0:
            raise WyomingError("invalid_audio", f"audio of {start.width} bytes, {start.channels} "
                               f"channels at {start.rate} Hz is not supported")  # fmt: skip
        recognizer = self.recognizer(None)
        if recognizer.kind == "parakeet":
            language = self.options(recognizer, self.language).language  # a prompt model's
            self.utterance = LiveTranscription(recognizer, self.service.compute, start.rate,
                                               language=language)  # fmt: skip
        else:
            batcher = self.service.batchers[recognizer.name]
            self.utterance = BufferedTranscription(
                recognizer, batcher, start.rate, self.options(recognizer, self.language)
            )
        self.format = (start.rate, start.width, start.channels)

    async def chunk(self, chunk: AudioChunk) -> None:
        if self.utterance is None:  # audio-start is optional before the first chunk
            self.begin(chunk)
        assert self.utterance is not None
        if (chunk.rate, chunk.width, chunk.channels) != self.format:
            raise WyomingError("invalid_audio", "the audio format changed within an utterance")
        try:
            samples = pcm_to_float(chunk.audio or b"", chunk.width, chunk.channels)
        except PCMError as err:
            raise WyomingError("invalid_audio", str(err)) from None
        limit = self.service.settings.upload.max_seconds
        if self.utterance.resampler.seconds + len(samples) / chunk.rate > limit:
            raise WyomingError("audio_too_long", f"an utterance is at most {limit:g} s of audio")
        await self.send_chunk(await self.utterance.add(samples))

    async def send_chunk(self, text: str) -> None:
        """Wyoming's transcript streaming: `transcript-start` once an utterance's audio
        arrives, then each piece of text as it becomes final (Parakeet; Canary has its text
        only at the end)."""
        if not self.streaming:
            self.streaming = True
            await self.write_event(TranscriptStart(language=self.transcript_language()).event())
        if text:
            await self.write_event(TranscriptChunk(text=text).event())

    async def stop_audio(self) -> None:
        utterance, self.utterance = self.utterance, None
        if utterance is None or utterance.resampler.received == 0:
            raise WyomingError("empty_audio", "audio-stop without audio")
        try:
            text = await utterance.finish()
        except BaseException:
            await utterance.discard()
            raise
        await self.send_chunk(utterance.finish_delta(text))
        # then the whole text, as clients without streaming read it, and the end of the stream
        await self.write_event(Transcript(text=text, language=self.transcript_language()).event())
        await self.write_event(TranscriptStop().event())
        self.streaming = False

    def transcript_language(self) -> str | None:
        recognizer = self.recognizer(None)
        if recognizer.kind == "canary":
            return self.language
        # a language-prompt model's language (auto by default); others do not say
        return self.options(recognizer, self.language).language if recognizer.languages else None

    async def drop(self) -> None:
        self.streaming = False
        utterance, self.utterance = self.utterance, None
        if utterance is not None:
            await utterance.discard()


async def start_wyoming(service: Service, host: str, port: int) -> AsyncTcpServer:
    """Serve Wyoming on `host:port` on the running loop; `await server.stop()` to end."""
    server = AsyncTcpServer(host, port)
    await server.start(lambda reader, writer: WyomingHandler(reader, writer, service))
    return server
