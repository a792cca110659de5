"""The ASGI application: OpenAI's audio and model routes, health, the page, and the checks
every request passes (API key, limits). No model logic: requests go to a model's `Batcher`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from speech_transcript.biasing import Biasing, BiasingError

from .batching import Arrivals, Batcher, BatchLimits
from .compute import Compute
from .errors import APIError
from .keys import authorised
from .models import Options, Recognizer
from .page import routes as page_routes
from .realtime import realtime_endpoint
from .responses import event_stream, respond
from .uploads import TranscriptionForm, UploadLimits, decode_audio, read_upload

T = TypeVar("T")


@dataclass(frozen=True)
class ServerSettings:
    api_key: str | None = None
    upload: UploadLimits = field(default_factory=UploadLimits)
    batch: BatchLimits = field(default_factory=BatchLimits)
    request_timeout: float = 900.0  # seconds from upload to answer
    decoders: int = 2  # uploads decoded at once (bounds memory under many clients)
    idle_timeout: float = 30.0  # seconds a realtime or Wyoming connection may send nothing
    wyoming_host: str = "127.0.0.1"
    wyoming_port: int | None = None  # serve Wyoming there too (None: not at all)
    max_streams: int = 64  # realtime and Wyoming sessions at once (each holds a stream's state)


class Service:
    """The served models, each with its batcher."""

    def __init__(
        self, recognizers: Sequence[Recognizer], settings: ServerSettings, compute: Compute
    ) -> None:
        self.settings = settings
        self.compute = compute
        self.models = {r.name: r for r in recognizers}
        self.arrivals = Arrivals()  # uploads being received: company a round may wait for
        self.batchers = {
            r.name: Batcher(r.name, r.run, settings.batch, r.sample_rate, compute, self.arrivals)
            for r in recognizers
        }

        self.streams = 0  # realtime and Wyoming sessions open now
        self.decoders = asyncio.Semaphore(settings.decoders)  # uploads decoded at once

    def open_stream(self) -> APIError | None:
        """Count a new streaming session in, or the 429 that refuses it when
        `max_streams` are open (each holds its model stream's caches)."""
        limit = self.settings.max_streams
        if self.streams >= limit:
            return APIError(429, f"the server takes at most {limit} streaming sessions at "
                            "once; try again later", code="too_many_sessions")  # fmt: skip
        self.streams += 1
        return None

    def close_stream(self) -> None:
        self.streams -= 1

    def get(self, name: str) -> Recognizer:
        if name not in self.models:
            served = ", ".join(sorted(self.models))
            raise APIError(404, f"model {name!r} is not served here; served: {served}",
                           param="model", code="model_not_found")  # fmt: skip
        return self.models[name]

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()
        self.compute.close()


async def while_connected(request: Request, work: Awaitable[T]) -> T:
    """`work`'s result, cancelled when the client goes away (a request still waiting for
    its round then leaves the queue) or past the request timeout (a 504)."""
    settings = service_of(request).settings
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait(
            {task, watch}, timeout=settings.request_timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        watch.cancel()
    if task in done:
        return task.result()
    task.cancel()
    if watch in done:
        raise APIError(400, "the client closed the connection")  # nobody reads this answer
    raise APIError(504, f"the transcription did not finish within {settings.request_timeout:g} s")


async def _disconnected(request: Request) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(0.25)


def service_of(connection: HTTPConnection) -> Service:
    return connection.app.state.service


def authorise(request: Request) -> None:
    if not authorised(request, service_of(request).settings.api_key):
        raise APIError(401, "a valid API key is required: send `Authorization: Bearer KEY`",
                       code="invalid_api_key")  # fmt: skip


async def health(request: Request) -> Response:
    service = service_of(request)
    batches = {
        name: {"waiting": b.waiting, "rounds": b.rounds, "largest_round": b.largest_round}
        for name, b in service.batchers.items()
    }
    return JSONResponse({"status": "ok", "models": sorted(service.models), "batches": batches,
                         "receiving": service.arrivals.count, "streams": service.streams})  # fmt: skip


async def list_models(request: Request) -> Response:
    authorise(request)
    data = [
        {"id": r.name, "object": "model", "created": r.created, "owned_by": "nvidia",
         "kind": r.kind, "source": r.ref, "translation": r.can_translate,
         "timestamps": r.has_timestamps, "languages": r.languages}
        for r in service_of(request).models.values()
    ]  # fmt: skip
    return JSONResponse({"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    authorise(request)
    r = service_of(request).get(request.path_params["name"])
    return JSONResponse(
        {"id": r.name, "object": "model", "created": r.created, "owned_by": "nvidia"}
    )


def audio_options(recognizer: Recognizer, form: TranscriptionForm, task: str) -> Options:
    """What the model is asked for; 400 for a format that needs times the model lacks.
    Canary's prompt asks for timestamps only where the format shows them or speakers need
    them (`diarize`), as the CLI's --timestamps: the prompt changes what the model writes."""
    if form.diarize and recognizer.diarizer is None:
        raise APIError(400, "this server diarizes nothing: start it with --diarize",
                       param="diarize")  # fmt: skip
    wants_times = form.diarize or form.response_format in ("srt", "vtt", "verbose_json")
    asked = Options(task, form.language, form.target_language, timestamps=wants_times,  # type: ignore[arg-type]
                    biasing=request_biasing(form), diarize=form.diarize)  # fmt: skip
    options = recognizer.check(asked)
    if form.diarize and not options.timestamps:
        raise APIError(400, f"model {recognizer.name!r} gives no timestamps: its words cannot "
                       "get speakers", param="diarize")  # fmt: skip
    needs_times = form.response_format in ("srt", "vtt") or "word" in form.timestamp_granularities
    if needs_times and not options.timestamps:
        raise APIError(
            400,
            f"model {recognizer.name!r} gives no timestamps: ask for json, text or "
            "verbose_json without word granularity",
            param="response_format",
        )
    return options


def request_biasing(form: TranscriptionForm) -> Biasing | None:
    """The request's phrases (`boost`, repeated) with their weights, to boost, or to spot
    with `word_spotter` (as the CLI's --boost-phrase and --word-spotter); 400 for values
    that cannot be used."""
    if not form.boost:
        if form.word_spotter:
            raise APIError(400, "word_spotter spots the request's boost phrases: give boost",
                           param="word_spotter")  # fmt: skip
        if form.boost_score is not None or form.boost_alpha is not None:
            raise APIError(400, "boost_score and boost_alpha need boost phrases", param="boost")
        return None
    if form.word_spotter and form.boost_alpha is not None:
        raise APIError(400, "word_spotter takes boost phrases and boost_score only (no "
                       "boost_alpha)", param="boost_alpha")  # fmt: skip
    settings = {"boost_score": form.boost_score, "boost_alpha": form.boost_alpha}
    try:
        return Biasing(tuple(form.boost), word_spotter=form.word_spotter,
                       **{k: v for k, v in settings.items() if v is not None})  # fmt: skip
    except BiasingError as err:
        raise APIError(400, str(err), param="boost") from None


async def audio(request: Request, task: str) -> Response:
    authorise(request)
    service = service_of(request)
    with service.arrivals.receiving():
        upload = await read_upload(request, service.settings.upload)
        form = upload.form
        recognizer = service.get(form.model)
        options = audio_options(recognizer, form, task)
        signal = await decode_audio(upload, recognizer.sample_rate, service.settings.upload,
                                    service.decoders)  # fmt: skip
        queued = service.batchers[recognizer.name].submit(signal, options)
    transcript = await while_connected(request, queued)
    language = form.language or transcript.language or options.language or "unknown"
    if form.stream and form.response_format in ("json", "text"):
        return event_stream(transcript)
    return respond(transcript, form.response_format, task=task, language=language,
                   granularities=form.timestamp_granularities)  # fmt: skip


async def transcriptions(request: Request) -> Response:
    return await audio(request, "transcribe")


async def translations(request: Request) -> Response:
    return await audio(request, "translate")


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return exc.response()


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {
        404: f"no route {request.url.path}",
        405: f"{request.method} is not allowed on {request.url.path}",
    }
    return APIError(exc.status_code, message.get(exc.status_code, str(exc.detail))).response()


async def unexpected(request: Request, exc: Exception) -> Response:
    # a fault of ours, logged with its traceback by the server; the client gets one line
    return APIError(500, f"internal error: {type(exc).__name__}").response()


@asynccontextmanager
async def lifespan(app: Starlette):
    """Wyoming alongside, when asked for; at the end, the rounds queued are finished."""
    service = app.state.service
    settings = service.settings
    wyoming = None
    try:
        if settings.wyoming_port is not None:
            from .wyoming_server import start_wyoming

            host, port = settings.wyoming_host, settings.wyoming_port
            wyoming = await start_wyoming(service, host, port)
        yield
    finally:
        if wyoming is not None:
            await wyoming.stop()
        await asyncio.to_thread(service.close)


ROUTES = [
    *page_routes,
    Route("/health", health),
    Route("/v1/models", list_models),
    Route("/v1/models/{name:path}", get_model),
    Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
    Route("/v1/audio/translations", translations, methods=["POST"]),
    WebSocketRoute("/v1/realtime", realtime_endpoint),
]
ERROR_HANDLERS = {APIError: api_error, HTTPException: http_error, Exception: unexpected}


def create_app(
    recognizers: Sequence[Recognizer], compute: Compute, settings: ServerSettings | None = None
) -> Starlette:
    """The app serving `recognizers`, which were loaded on `compute`'s thread."""
    app = Starlette(routes=ROUTES, lifespan=lifespan, exception_handlers=ERROR_HANDLERS)
    app.state.service = Service(recognizers, settings or ServerSettings(), compute)
    return app
