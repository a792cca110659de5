"""A multipart form already in memory, split into its fields and its file.

The body is read whole within the byte limit first (`uploads.read_upload`), so the parts
are slices of it: python-multipart's parser runs over it once and the file's bytes are
joined once. Starlette's form parser would spool the file through a temporary-file object,
chunk by chunk with an await each: ~0.4 ms of the event loop per 550 kB upload against
~0.1 ms here, time the model's thread waits for the GIL on a busy server.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header


class FormError(ValueError):
    """A form this server refuses: the message is one line for the client."""


@dataclass(frozen=True)
class FilePart:
    filename: str
    data: bytes


@dataclass
class _Part:
    header_name: bytes = b""
    header_value: bytes = b""
    disposition: bytes = b""
    name: str = ""
    filename: str | None = None
    chunks: list[memoryview | bytes] = field(default_factory=list)
    size: int = 0


def parse_form(
    body: bytes, content_type: str, *, max_files: int, max_fields: int, max_field_bytes: int
) -> list[tuple[str, str | FilePart]]:
    """The form's parts in order: (name, text) for fields, (name, FilePart) for files.
    Raises FormError for a form over the limits or without part names, and the parser's
    own errors for a body that is not multipart."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise FormError("the multipart Content-Type has no boundary")
    charset = _charset(params.get(b"charset"))
    items: list[tuple[str, str | FilePart]] = []
    counts = {"files": 0, "fields": 0}
    part = _Part()

    def on_part_begin() -> None:
        nonlocal part
        part = _Part()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part.header_name += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part.header_value += data[start:end]

    def on_header_end() -> None:
        if part.header_name.lower() == b"content-disposition":
            part.disposition = part.header_value
        part.header_name, part.header_value = b"", b""

    def on_headers_finished() -> None:
        _, options = parse_options_header(part.disposition)
        if b"name" not in options:
            raise FormError("a form part has no name in its Content-Disposition")
        part.name = _text(options[b"name"], charset, "a part's name")
        kind, limit = ("files", max_files) if b"filename" in options else ("fields", max_fields)
        counts[kind] += 1
        if counts[kind] > limit:
            raise FormError(f"too many {kind} in the form (the limit is {limit})")
        if kind == "files":
            part.filename = _text(options[b"filename"], charset, "a file name")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part.size += end - start
        if part.filename is None and part.size > max_field_bytes:
            raise FormError(f"field {part.name!r} is over {max_field_bytes // 1024} KiB")
        # a view of the body; bytes the parser hands over from a buffer of its own (a
        # boundary's partial match) are copied, whatever the parser's version does with it
        part.chunks.append(memoryview(body)[start:end] if data is body else bytes(data[start:end]))

    def on_part_end() -> None:
        data = b"".join(part.chunks)
        if part.filename is not None:
            items.append((part.name, FilePart(part.filename, data)))
        else:
            items.append((part.name, _text(data, charset, f"field {part.name!r}")))

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    })  # fmt: skip
    parser.write(body)
    parser.finalize()
    return items


def _charset(value: bytes | None) -> str:
    """The form's declared charset if Python knows it, else UTF-8."""
    try:
        return codecs.lookup(value.decode("latin-1")).name if value else "utf-8"
    except LookupError:
        return "utf-8"


def _text(raw: bytes, charset: str, what: str) -> str:
    try:
        return raw.decode(charset)
    except UnicodeDecodeError:
        raise FormError(f"{what} is not {charset} text") from None
