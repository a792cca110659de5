"""Bad and hostile requests: each a 4xx in OpenAI's error shape with one clear message, the
server goes on, its memory returns to where it was and nothing is left on disk."""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI
from server_process import ROOT, cli_outputs, running_server, stalled_upload

EXAMPLE = ROOT / "apps" / "parakeet" / "src" / "nemo_mlx_parakeet" / "demo" / "example.wav"
KEY = "test-key-0123456789"
MAX_SECONDS = 30


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return out.getvalue()


@pytest.fixture(scope="module")
def tmpdir_for_server(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-tmp")


@pytest.fixture(scope="module")
def server(tmpdir_for_server):
    with running_server(
        "--model", "demo", "--api-key", KEY, "--max-upload-mb", "1",
        "--max-audio-seconds", str(MAX_SECONDS), "--max-wait-ms", "50",
        env={"TMPDIR": str(tmpdir_for_server)},
    ) as handle:  # fmt: skip
        yield handle


@pytest.fixture(scope="module")
def client(server) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)


def post(server, files=None, data=None, key: str | None = KEY, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.post(f"{server.url}/v1/audio/transcriptions", files=files, data=data,
                      headers=headers, timeout=60, **kwargs)  # fmt: skip


def error_of(response: httpx.Response) -> str:
    """The one message of an OpenAI-shaped error body."""
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    message = body["error"]["message"]
    assert "\n" not in message
    assert "Traceback" not in message
    return message


GOOD = EXAMPLE.read_bytes()
TRUNCATED = GOOD[: len(GOOD) // 2]
OVER_SECONDS = wav_bytes(np.zeros(8000 * (MAX_SECONDS + 5)), 8000)  # 35 s at 8 kHz: 560 kB
BAD_REQUESTS = {
    "empty file": ({"file": ("a.wav", b"")}, {"model": "demo"}, 400, "empty"),
    "text renamed .wav": ({"file": ("notes.wav", b"hello, this is text\n" * 20)}, {"model": "demo"}, 400, "notes.wav"),
    "truncated wav": ({"file": ("cut.wav", TRUNCATED)}, {"model": "demo"}, 400, "truncated"),
    "over the upload limit": ({"file": ("big.wav", b"\0" * (1024 * 1024 + 1))}, {"model": "demo"}, 413, "MiB"),
    "over the audio limit": ({"file": ("long.wav", OVER_SECONDS)}, {"model": "demo"}, 413, f"limit is {MAX_SECONDS} s"),
    "unknown model": ({"file": ("a.wav", GOOD)}, {"model": "whisper-1"}, 404, "served: demo"),
    "no file": (None, {"model": "demo"}, 400, "file"),
    "no model": ({"file": ("a.wav", GOOD)}, {}, 400, "model"),
    "bad format": ({"file": ("a.wav", GOOD)}, {"model": "demo", "response_format": "xml"}, 400, "response_format"),
    "bad temperature": ({"file": ("a.wav", GOOD)}, {"model": "demo", "temperature": "7"}, 400, "temperature"),
    "bad granularity": ({"file": ("a.wav", GOOD)}, {"model": "demo", "timestamp_granularities[]": "char"}, 400, "timestamp_granularities"),
    "path as file name": ({"file": ("../../../etc/passwd", b"root:x:0:0")}, {"model": "demo"}, 400, "../../../etc/passwd"),
    "translation on parakeet": (None, None, None, None),  # through the translations route below
}  # fmt: skip
del BAD_REQUESTS["translation on parakeet"]


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_is_one_clear_4xx(server, case):
    files, data, status, needle = BAD_REQUESTS[case]
    response = post(server, files=files, data=data)
    assert response.status_code == status, response.text
    assert needle in error_of(response)


def test_server_paths_never_reach_the_client(server):
    response = post(server, files={"file": ("x.mp4", b"\0\0\0\x18ftypmp42" + b"\0" * 64)},
                    data={"model": "demo"})  # fmt: skip
    assert response.status_code == 400
    message = error_of(response)
    assert "/tmp" not in message, message
    assert "mlx-audio" not in message, message


def test_api_key_is_required(server):
    for key in (None, "wrong", KEY + "x", "x" + KEY[1:]):
        response = post(server, files={"file": ("a.wav", GOOD)}, data={"model": "demo"}, key=key)
        assert response.status_code == 401
        assert "API key" in error_of(response)
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).models.list()
    assert httpx.get(f"{server.url}/health").status_code == 200  # health needs no key


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # openai marks translations so
def test_openai_client_sees_4xx_as_its_errors(client):
    with pytest.raises(openai.NotFoundError, match="served: demo"):
        client.audio.transcriptions.create(model="nope", file=("a.wav", GOOD))
    with pytest.raises(openai.BadRequestError, match="translation needs a Canary model"):
        client.audio.translations.create(model="demo", file=("a.wav", GOOD))


def test_wrong_method_route_and_body(server):
    assert httpx.get(f"{server.url}/v1/audio/transcriptions").status_code == 405
    response = httpx.get(f"{server.url}/v1/nothing")
    assert response.status_code == 404
    assert "no route" in error_of(response)
    response = httpx.post(f"{server.url}/v1/audio/transcriptions", json={"model": "demo"},
                          headers={"Authorization": f"Bearer {KEY}"})  # fmt: skip
    assert response.status_code == 400
    assert "multipart/form-data" in error_of(response)


def test_silence_is_transcribed_not_refused(client, tmp_path):
    """Digital silence is audio: the answer is what the CLI writes for it (the demo model
    hears a word in it), not an error."""
    silence = tmp_path / "quiet.wav"
    silence.write_bytes(wav_bytes(np.zeros(16000 * 2), 16000))
    cli = json.loads(cli_outputs("parakeet", "demo", silence, tmp_path / "out", tmp_path)["json"])
    result = client.audio.transcriptions.create(model="demo", file=("quiet.wav", silence.read_bytes()),
                                                response_format="verbose_json",
                                                timestamp_granularities=["word"])  # fmt: skip
    assert result.duration == cli["duration"] == 2.0
    assert result.text == cli["text"]
    assert [w.word for w in result.words] == [w["text"] for w in cli["words"]]


def test_a_client_gone_mid_upload_costs_nothing(server, client):
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
            sock.sendall(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
                         b"Authorization: Bearer " + KEY.encode() + b"\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\n"
                         b"Content-Length: 900000\r\n\r\n" + body + GOOD[:20000])  # fmt: skip
    expected = client.audio.transcriptions.create(model="demo", file=("a.wav", GOOD)).text
    assert expected == "please call anna at quarter past seven in the morning"
    assert httpx.get(f"{server.url}/health").json()["receiving"] == 0
    assert "Traceback" not in server.output()  # a routine event, not logged as a fault


def test_a_client_gone_while_queued_is_not_decoded(tmp_path):
    """A client that closes the connection while its request waits for its round: the
    request leaves the queue (no round runs for it), and the server goes on."""
    with running_server("--model", "demo", "--max-wait-ms", "2000") as server:
        boundary = b"b0undary"
        body = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="model"\r\n\r\ndemo\r\n'
                b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
                b"Content-Type: audio/wav\r\n\r\n" + GOOD + b"\r\n--" + boundary + b"--\r\n")  # fmt: skip
        with stalled_upload(server):  # company on its way: the round waits 2 s for it
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
                time.sleep(0.8)  # read, decoded and queued
            time.sleep(2.5)
        batches = httpx.get(f"{server.url}/health").json()["batches"]["demo"]
        assert batches == {"waiting": 0, "rounds": 0, "largest_round": 0}
        response = httpx.post(f"{server.url}/v1/audio/transcriptions", data={"model": "demo"},
                              files={"file": ("a.wav", GOOD)}, timeout=60)  # fmt: skip
        assert response.json()["text"] == "please call anna at quarter past seven in the morning"
        assert httpx.get(f"{server.url}/health").json()["batches"]["demo"]["rounds"] == 1


def test_a_round_waits_for_company_only_while_some_is_on_its_way():
    """A request with nothing else being received runs at once (one client alone pays no
    --max-wait-ms); while another upload is still arriving, its round waits for it, up to
    --max-wait-ms, then runs without it."""
    wait = 3.0
    with running_server("--model", "demo", "--max-wait-ms", str(int(wait * 1000))) as server:

        def timed_request() -> float:
            start = time.monotonic()
            response = httpx.post(f"{server.url}/v1/audio/transcriptions", timeout=60,
                                  data={"model": "demo"}, files={"file": ("a.wav", GOOD)})  # fmt: skip
            assert (
                response.json()["text"] == "please call anna at quarter past seven in the morning"
            )
            return time.monotonic() - start

        timed_request()  # the first compiles the model's steps
        assert timed_request() < wait / 2
        with stalled_upload(server):
            assert timed_request() >= wait
        assert httpx.get(f"{server.url}/health").json()["receiving"] == 0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_fifty_bad_requests_among_good_ones(server, client, tmpdir_for_server):
    """50 bad requests at once with 14 good ones: every good one answered exactly, every bad
    one a 4xx; the server then answers, holds no more memory than after the same storm
    before, and has left nothing in its temporary directory."""
    expected = client.audio.transcriptions.create(model="demo", file=("a.wav", GOOD)).text
    cases = list(BAD_REQUESTS.values())
    requests = [cases[i % len(cases)] for i in range(50)]
    requests += [({"file": ("good.wav", GOOD)}, {"model": "demo"}, 200, None)] * 14
    order = np.random.default_rng(0).permutation(len(requests))

    def one(index: int) -> None:
        files, data, status, needle = requests[index]
        response = post(server, files=files, data=data)
        assert response.status_code == status, (index, response.text)
        if status == 200:
            assert response.json() == {"text": expected}
        else:
            assert needle in error_of(response)

    def storm() -> None:
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(one, order))

    storm()  # the first brings the allocator's caches to their working size
    baseline = rss_bytes(server.process.pid)
    storm()
    storm()
    assert rss_bytes(server.process.pid) <= baseline + 64 * 2**20
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
    # MLX's CPU backend keeps its compiled kernels in $TMPDIR/mlx; uploads leave nothing
    assert [p.name for p in tmpdir_for_server.iterdir()] in ([], ["mlx"])
    assert not any(p.is_file() for p in tmpdir_for_server.iterdir())


def test_sigterm_finishes_the_request_in_flight(tmp_path):
    """SIGTERM: the server stops taking connections, answers what it has, then exits."""
    with running_server("--model", "demo", "--max-wait-ms", "5000") as server:
        with ThreadPoolExecutor(1) as pool:
            with stalled_upload(server):  # the request waits in its round for this company
                pending = pool.submit(
                    httpx.post, f"{server.url}/v1/audio/transcriptions",
                    files={"file": ("a.wav", GOOD)}, data={"model": "demo"}, timeout=60,
                )  # fmt: skip
                deadline = time.monotonic() + 30
                while httpx.get(f"{server.url}/health").json()["batches"]["demo"]["waiting"] < 1:
                    assert time.monotonic() < deadline, "the request was never queued"
                    time.sleep(0.02)
                server.process.send_signal(signal.SIGTERM)
                time.sleep(0.3)
            response = pending.result()
        assert response.status_code == 200
        assert response.json()["text"] == "please call anna at quarter past seven in the morning"
        # uvicorn re-raises the signal once it has shut down cleanly, so that the process
        # ends as a SIGTERM'd one should (supervisors read that as a clean stop)
        assert server.process.wait(timeout=30) == -signal.SIGTERM
        assert "Application shutdown complete" in server.output()
        assert "Traceback" not in server.output()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/health", timeout=2)


def test_a_busy_port_fails_in_one_line_before_loading():
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "nemo_mlx_serve.cli", "--model", "demo", "--port", str(port)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"nemo-mlx-serve: error: --port {port}: cannot listen on 127.0.0.1: Address already in use"
    ]
