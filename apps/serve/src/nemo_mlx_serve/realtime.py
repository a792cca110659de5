"""OpenAI's realtime transcription session over a WebSocket: the subset a client that only
transcribes uses (no voice activity detection: the client commits each utterance).

Client events: `transcription_session.update`, `input_audio_buffer.append` (base64 PCM16,
24 kHz mono), `input_audio_buffer.commit`, `input_audio_buffer.clear`. Audio goes into the
model's stream as it arrives, so text that becomes final is sent at once as `...delta`
events and the transcript is ready soon after the commit. End-of-utterance checkpoints
(parakeet_realtime_eou_120m-v1) also send `...end_of_utterance` where the model marks one
(`<EOU>`, or `<EOB>` for a backchannel), at once, with its time in the item's audio. A bad event gets an `error`
event and the session goes on; events are handled one at a time, so a client that sends
faster than the model decodes is slowed by the socket, not buffered without bound."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from starlette.websockets import WebSocket, WebSocketDisconnect

from .errors import APIError
from .keys import authorised
from .models import Options, Recognizer
from .pcm import pcm_to_float
from .streams import LiveTranscription

if TYPE_CHECKING:
    from .app import Service

REALTIME_RATE = 24000  # OpenAI's realtime audio: PCM16 at 24 kHz, mono
MAX_EVENT_BYTES = 4 * 2**20  # larger text frames get an error (beyond uvicorn's 16 MiB: closed)

log = logging.getLogger("nemo_mlx_serve.realtime")


class EventError(Exception):
    """A client event that cannot be served; becomes one `error` event."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


class RealtimeSession:
    """One connection: its settings, the utterance being received, and the event loop."""

    def __init__(self, websocket: WebSocket, service: Service) -> None:
        self.ws = websocket
        self.service = service
        self.id = _id("sess")
        self.model = next(iter(service.models))  # the first served model until updated
        self.language: str | None = None
        self.prompt = ""
        self.item: LiveTranscription | None = None
        self.item_id: str | None = None
        self.previous_item_id: str | None = None

    # ------------------------------------------------------------------ the connection

    async def run(self) -> None:
        await self.ws.accept()
        try:
            await self.send("transcription_session.created", session=self.session())
            while True:
                text = await self.receive()
                if text is None:
                    return
                await self.handle(text)
        except (WebSocketDisconnect, OSError):
            pass  # the client went away: nothing to answer
        finally:
            if self.item is not None:
                await self.item.discard()

    async def receive(self) -> str | bytes | None:
        """The next frame, or None when the client left or was idle too long."""
        idle = self.service.settings.idle_timeout
        try:
            message = await asyncio.wait_for(self.ws.receive(), timeout=idle)
        except asyncio.TimeoutError:
            await self.error(EventError("idle_timeout", f"no event for {idle:g} s: closing"))
            await self.ws.close(code=1000, reason="idle timeout")
            return None
        if message["type"] == "websocket.disconnect":
            return None
        if message.get("text") is not None:
            return message["text"]
        return message.get("bytes") or b""

    async def send(self, kind: str, /, **fields: Any) -> None:
        await self.ws.send_text(json.dumps({"event_id": _id("event"), "type": kind, **fields}))

    async def error(self, err: EventError, event_id: str | None = None) -> None:
        await self.send("error", error={"type": "invalid_request_error", "code": err.code,
                                        "message": err.message, "param": err.param,
                                        "event_id": event_id})  # fmt: skip

    # ------------------------------------------------------------------ events

    async def handle(self, frame: str | bytes) -> None:
        event_id = None
        try:
            event = self.parse(frame)
            given = event.get("event_id")
            event_id = given[:128] if isinstance(given, str) else None
            handler = self.HANDLERS.get(event["type"])
            if handler is None:
                known = ", ".join(self.HANDLERS)
                raise EventError("unknown_event", f"unknown event type {str(event['type'])[:64]!r}; "
                                 f"this server takes {known}", "type")  # fmt: skip
            await handler(self, event)
        except EventError as err:
            await self.error(err, event_id)
        except APIError as err:  # a model's own check (unknown name, language)
            await self.error(
                EventError(err.code or "invalid_value", err.message, err.param), event_id
            )
        except (WebSocketDisconnect, OSError):
            raise
        except Exception as err:  # a fault of ours: drop the utterance, keep the session
            log.exception("realtime session %s", self.id)
            await self.drop_item()
            await self.send("error", error={"type": "server_error", "code": "internal_error",
                                            "message": f"internal error: {type(err).__name__}; "
                                            "the audio buffer was cleared", "param": None,
                                            "event_id": event_id})  # fmt: skip

    @staticmethod
    def parse(frame: str | bytes) -> dict:
        if isinstance(frame, bytes):
            raise EventError("invalid_event", "send events as JSON text frames, not binary")
        if len(frame) > MAX_EVENT_BYTES:
            raise EventError("event_too_large", f"the event is {len(frame)} bytes; the limit is "
                             f"{MAX_EVENT_BYTES} (send audio in smaller appends)")  # fmt: skip
        try:
            event = json.loads(frame)
        except ValueError as err:
            raise EventError("invalid_json", f"the event is not JSON: {err}") from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise EventError("invalid_event", "an event is a JSON object with a string `type`",
                             "type")  # fmt: skip
        return event

    async def update(self, event: dict) -> None:
        session = event.get("session")
        if not isinstance(session, dict):
            raise EventError("invalid_value", "`session` must be an object", "session")
        fmt = session.get("input_audio_format", "pcm16")
        if fmt != "pcm16":
            raise EventError("invalid_value", f"input_audio_format {str(fmt)[:32]!r} is not "
                             "supported: send pcm16 (24 kHz mono)", "session.input_audio_format")  # fmt: skip
        if session.get("turn_detection") is not None:
            raise EventError("invalid_value", "turn detection is not supported: set it to null "
                             "and commit each utterance", "session.turn_detection")  # fmt: skip
        model, language, prompt = self.model, self.language, self.prompt
        transcription = session.get("input_audio_transcription")
        if transcription is not None:
            if not isinstance(transcription, dict):
                raise EventError("invalid_value", "`input_audio_transcription` must be an object",
                                 "session.input_audio_transcription")  # fmt: skip
            model = transcription.get("model", model)
            language = transcription.get("language", language)
            prompt = transcription.get("prompt", prompt) or ""
            param = "session.input_audio_transcription"
            if not isinstance(model, str):
                raise EventError("invalid_value", "`model` must be a string", f"{param}.model")
            if language is not None and not (isinstance(language, str) and 0 < len(language) <= 16):
                raise EventError("invalid_value", "`language` must be a short language code",
                                 f"{param}.language")  # fmt: skip
            if not isinstance(prompt, str):
                raise EventError("invalid_value", "`prompt` must be a string", f"{param}.prompt")
            recognizer = self.streaming_model(model, f"{param}.model")
            try:  # a language-prompt model's target language, checked as HTTP requests are
                recognizer.check(Options(language=language))
            except APIError as err:
                raise EventError("invalid_value", err.message, f"{param}.language") from None
        # an utterance already begun keeps its model; the next one takes the new settings
        self.model, self.language, self.prompt = model, language, prompt
        await self.send("transcription_session.updated", session=self.session())

    def streaming_model(self, name: str, param: str | None = None) -> Recognizer:
        if len(name) > 128:  # no served name is longer; the message quotes the name
            raise EventError("model_not_found", "no served model has a name that long", param)
        try:
            recognizer = self.service.get(name)
        except APIError as err:
            raise EventError("model_not_found", err.message, param) from None
        if recognizer.kind != "parakeet":
            raise EventError("model_not_streaming", f"model {name!r} ({recognizer.kind}) cannot "
                             "stream; use /v1/audio/transcriptions for it", param)  # fmt: skip
        return recognizer

    async def append(self, event: dict) -> None:
        audio = event.get("audio")
        if not isinstance(audio, str):
            raise EventError("invalid_value", "`audio` must be a base64 string", "audio")
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise EventError("invalid_audio", "`audio` is not valid base64", "audio") from None
        if len(data) % 2:
            raise EventError("invalid_audio", "`audio` must be whole PCM16 samples (an even "
                             "number of bytes)", "audio")  # fmt: skip
        if not data:
            return
        limit = self.service.settings.upload.max_seconds
        seconds = len(data) / 2 / REALTIME_RATE
        buffered = self.item.resampler.seconds if self.item is not None else 0.0
        if buffered + seconds > limit:
            raise EventError("input_audio_buffer_full", f"the buffer holds {buffered:.1f} s; the "
                             f"limit is {limit:g} s: commit or clear it", "audio")  # fmt: skip
        if self.item is None:
            recognizer = self.streaming_model(self.model, "session.input_audio_transcription.model")
            self.item = LiveTranscription(recognizer, self.service.compute, REALTIME_RATE,
                                          language=self.language)  # fmt: skip
            self.item_id = _id("item")
        delta = await self.item.add(pcm_to_float(data, 2, 1))
        await self.delta(delta)
        await self.end_of_utterances(self.item, self.item_id)

    async def delta(self, text: str) -> None:
        if text:
            await self.send("conversation.item.input_audio_transcription.delta",
                            item_id=self.item_id, content_index=0, delta=text)  # fmt: skip

    async def end_of_utterances(self, item: LiveTranscription, item_id: str | None) -> None:
        """One event per end-of-utterance marker the model made final (NeMo's frame)."""
        for marker in item.take_end_of_utterances():
            await self.send("conversation.item.input_audio_transcription.end_of_utterance",
                            item_id=item_id, content_index=0, kind=marker.kind,
                            audio_end_ms=round(marker.time * 1000), frame=marker.frame,
                            transcript=marker.text)  # fmt: skip

    async def commit(self, event: dict) -> None:
        item, item_id = self.item, self.item_id
        if item is None or item.resampler.received == 0:
            raise EventError("input_audio_buffer_commit_empty",
                             "the buffer is empty: append audio before committing")  # fmt: skip
        self.item, previous, self.previous_item_id = None, self.previous_item_id, item_id
        await self.send("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id)
        await self.send("conversation.item.created", previous_item_id=previous,
                        item={"id": item_id, "object": "realtime.item", "type": "message",
                              "status": "completed", "role": "user",
                              "content": [{"type": "input_audio", "transcript": None}]})  # fmt: skip
        try:
            text = await item.finish()
        except BaseException:
            await item.discard()
            raise
        if rest := item.finish_delta(text):
            await self.send("conversation.item.input_audio_transcription.delta",
                            item_id=item_id, content_index=0, delta=rest)  # fmt: skip
        await self.end_of_utterances(item, item_id)
        await self.send("conversation.item.input_audio_transcription.completed",
                        item_id=item_id, content_index=0, transcript=text)  # fmt: skip

    async def clear(self, event: dict) -> None:
        await self.drop_item()
        await self.send("input_audio_buffer.cleared")

    async def drop_item(self) -> None:
        item, self.item = self.item, None
        if item is not None:
            await item.discard()

    def session(self) -> dict:
        return {
            "id": self.id,
            "object": "realtime.transcription_session",
            "input_audio_format": "pcm16",
            "input_audio_transcription": {
                "model": self.model, "language": self.language, "prompt": self.prompt,
            },
            "turn_detection": None,
            "input_audio_noise_reduction": None,
            "include": [],
        }  # fmt: skip

    HANDLERS: ClassVar[dict[str, Callable[[RealtimeSession, dict], Awaitable[None]]]] = {
        "transcription_session.update": update,
        "input_audio_buffer.append": append,
        "input_audio_buffer.commit": commit,
        "input_audio_buffer.clear": clear,
    }


async def realtime_endpoint(websocket: WebSocket) -> None:
    """`/v1/realtime?intent=transcription`: checks the key before accepting, then serves."""
    service = websocket.app.state.service
    if not authorised(websocket, service.settings.api_key):
        denial = APIError(401, "a valid API key is required: send `Authorization: Bearer KEY`",
                          code="invalid_api_key")  # fmt: skip
        await deny(websocket, denial)
        return
    intent = websocket.query_params.get("intent", "transcription")
    if intent != "transcription":
        denial = APIError(400, f"intent {intent[:32]!r} is not served: only "
                          "intent=transcription", param="intent")  # fmt: skip
        await deny(websocket, denial)
        return
    if (full := service.open_stream()) is not None:
        await deny(websocket, full)
        return
    try:
        await RealtimeSession(websocket, service).run()
    finally:
        service.close_stream()


async def deny(websocket: WebSocket, error: APIError) -> None:
    """Refuse the handshake with an HTTP error (a plain close where the server cannot)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error.response())
    else:
        await websocket.close(code=1008, reason=error.message[:120])
