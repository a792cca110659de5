"""An upload from the wire to samples: the body read within the byte limit and the time
limit, the multipart form checked field by field, the audio decoded and checked against the
seconds limit. Every failure is an `APIError` with one message; nothing is left on disk."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect, Request

from mlx_audio_frontend import AudioError, load_samples

from .errors import APIError
from .forms import FilePart, parse_form
from .responses import Granularity, ResponseFormat


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 200 * 1024 * 1024
    max_seconds: float = 4 * 3600.0
    read_timeout: float = 120.0  # seconds to receive the whole body


_LIST_FIELDS = ("timestamp_granularities", "boost")
MAX_BOOST = 1000  # phrases one request may boost
MAX_FIELDS = 32 + MAX_BOOST  # form fields: OpenAI's, and each boost phrase as one


class TranscriptionForm(BaseModel):
    """The form fields of OpenAI's transcription and translation requests (the file apart).
    `prompt` is read and not used: these models take no text prompt. `temperature` is
    checked and not used: decoding is greedy (or the model's beam), never sampled."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    language: str | None = Field(None, min_length=1, max_length=16)
    target_language: str | None = Field(None, min_length=1, max_length=16)
    prompt: str | None = None
    response_format: ResponseFormat = "json"
    temperature: float = Field(0.0, ge=0.0, le=1.0)
    timestamp_granularities: list[Granularity] = Field(default_factory=list)
    stream: bool = False
    # phrase boosting or spotting (this server's own fields; OpenAI's client sends them
    # via extra_body)
    boost: list[str] = Field(default_factory=list, max_length=MAX_BOOST)
    boost_score: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    boost_alpha: float | None = Field(None, ge=0.0, allow_inf_nan=False)
    word_spotter: bool = False  # spot the boost phrases (CTC heads), as `--word-spotter`
    diarize: bool = False  # speakers on words and segments (a server started with --diarize)


@dataclass
class Upload:
    form: TranscriptionForm
    filename: str
    data: bytes


async def read_upload(request: Request, limits: UploadLimits) -> Upload:
    """The checked form and the file's bytes of a multipart request."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise APIError(400, "send the audio as multipart/form-data with a `file` field")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limits.max_bytes:
        raise _too_large(int(length), limits)
    body = await _read_body(request, limits)
    try:
        parts = parse_form(body, content_type, max_files=1, max_fields=MAX_FIELDS,
                           max_field_bytes=64 * 1024)  # fmt: skip
    except Exception as err:  # the limits, or the multipart parser's errors: a malformed body
        raise APIError(400, f"malformed multipart body: {_first_line(err)}") from None
    fields: dict[str, object] = {}
    upload: FilePart | None = None
    for key, value in parts:
        if isinstance(value, FilePart):
            if key != "file":
                raise APIError(400, f"field {key!r} must be text, not a file", param=key)
            upload = value
            continue
        if key == "file":
            continue
        name = key.removesuffix("[]")
        if name in _LIST_FIELDS:  # repeated (OpenAI's client writes `key[]`)
            fields.setdefault(name, []).append(value)  # type: ignore[union-attr]
        else:
            fields[key] = value
    if upload is None:
        raise APIError(
            400, "the request has no `file`: send the audio as a file field", param="file"
        )
    try:
        form_fields = TranscriptionForm.model_validate(fields)
    except ValidationError as err:
        first = err.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise APIError(400, f"{param}: {first['msg']}", param=param) from None
    filename = upload.filename or "upload"
    if not upload.data:
        raise APIError(400, f"{_safe(filename)}: the file is empty", param="file")
    return Upload(form_fields, filename, upload.data)


async def _read_body(request: Request, limits: UploadLimits) -> bytes:
    """The whole body, within the byte limit and the time limit (one deadline for the
    whole upload, not one timer per chunk)."""

    async def chunks() -> bytes:
        received, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_bytes:
                raise _too_large(size, limits)
            received.append(chunk)
        return b"".join(received)

    try:
        return await asyncio.wait_for(chunks(), timeout=limits.read_timeout)
    except ClientDisconnect:  # a client gone mid-upload: routine, not a fault of ours
        raise APIError(400, "the client closed the connection") from None
    except asyncio.TimeoutError:
        raise APIError(408, f"the upload did not arrive within {limits.read_timeout:g} s") from None


def _too_large(size: int, limits: UploadLimits) -> APIError:
    return APIError(
        413,
        f"the upload is over the limit of {limits.max_bytes / 2**20:g} MiB "
        f"({'at least ' if size <= limits.max_bytes else ''}{size / 2**20:.1f} MiB)",
        code="upload_too_large",
    )


async def decode_audio(
    upload: Upload, rate: int, limits: UploadLimits, gate: asyncio.Semaphore
) -> np.ndarray:
    """Mono samples at `rate`: any format the CLI reads, at any sample rate."""
    async with gate:
        try:
            samples = await asyncio.to_thread(load_samples, upload.data, rate)
        except AudioError as err:
            raise APIError(400, f"{_safe(upload.filename)}: {err}", param="file") from None
    seconds = len(samples) / rate
    if seconds > limits.max_seconds:
        raise APIError(
            413, f"{_safe(upload.filename)} is {seconds:.0f} s of audio; the limit is {limits.max_seconds:g} s",
            param="file", code="audio_too_long",
        )  # fmt: skip
    return samples


def _safe(name: str) -> str:
    """A client's file name, fit to quote in a message (never used as a path)."""
    cleaned = "".join(c if c.isprintable() else "?" for c in name)[:100]
    return cleaned or "upload"


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
