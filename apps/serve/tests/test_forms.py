"""parse_form: the parts a real client (httpx, as OpenAI's client sends them) encodes come
back as sent; forms over the limits or malformed are refused with one line."""

from __future__ import annotations

import httpx
import pytest
from python_multipart.exceptions import MultipartParseError

from nemo_mlx_serve.forms import FilePart, FormError, parse_form

LIMITS = {"max_files": 1, "max_fields": 4, "max_field_bytes": 1024}


def encoded(data=None, files=None) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", data=data, files=files)
    return request.read(), request.headers["content-type"]


def test_fields_and_file_come_back_as_sent():
    # partial boundaries in the file (the parser hands their bytes over from a buffer of its own)
    audio = b"\r\n--a" + bytes(range(256)) * 2000 + b"\r\n--not-the-boundary\r\n" + b"\r\n-x"
    body, kind = encoded(
        data={"model": "demo", "timestamp_granularities[]": ["word", "segment"], "prompt": "é ü"},
        files={"file": ("clip one.wav", audio, "audio/wav")},
    )
    parts = parse_form(body, kind, **LIMITS)
    assert parts == [
        ("model", "demo"),
        ("timestamp_granularities[]", "word"),
        ("timestamp_granularities[]", "segment"),
        ("prompt", "é ü"),
        ("file", FilePart("clip one.wav", audio)),
    ]


def test_an_empty_file_and_no_file():
    body, kind = encoded(data={"model": "demo"}, files={"file": ("a.wav", b"")})
    assert parse_form(body, kind, **LIMITS)[-1] == ("file", FilePart("a.wav", b""))
    body, kind = encoded(data={"model": "demo", "file": "text"}, files={"x": ("", b"")})
    parts = parse_form(body, kind, **LIMITS)
    assert ("file", "text") in parts


@pytest.mark.parametrize(
    ("data", "files", "message"),
    [
        (None, [("file", ("a.wav", b"1")), ("file", ("b.wav", b"2"))], "too many files"),
        ({f"f{i}": "v" for i in range(5)}, {"file": ("a.wav", b"1")}, "too many fields"),
        ({"prompt": "x" * 1025}, {"file": ("a.wav", b"1")}, "'prompt' is over 1 KiB"),
    ],
)
def test_forms_over_the_limits(data, files, message):
    body, kind = encoded(data=data, files=files)
    with pytest.raises(FormError, match=message):
        parse_form(body, kind, **LIMITS)


def test_malformed_forms():
    nameless = b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n"
    with pytest.raises(FormError, match="no name"):
        parse_form(nameless, "multipart/form-data; boundary=b", **LIMITS)
    latin = b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\n\xe9\r\n--b--\r\n'
    with pytest.raises(FormError, match="'model' is not utf-8 text"):
        parse_form(latin, "multipart/form-data; boundary=b", **LIMITS)
    assert parse_form(latin, "multipart/form-data; boundary=b; charset=latin-1", **LIMITS) == [
        ("model", "é")
    ]
    with pytest.raises(FormError, match="no boundary"):
        parse_form(latin, "multipart/form-data", **LIMITS)
    with pytest.raises(MultipartParseError):  # the parser's own error: not multipart
        parse_form(b"hello there, no boundary at all", "multipart/form-data; boundary=b", **LIMITS)
