"""The real server as a subprocess on a free port of 127.0.0.1, and the CLI's output to
compare it with, for the tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self, api_key: str = "unused"):
        """The official `openai` client of this server, without retries (each answer seen)."""
        from openai import OpenAI

        return OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0)


@contextlib.contextmanager
def running_server(
    *args: str,
    env: dict[str, str] | None = None,
    log_dir: Path | None = None,
    timeout: float = 120.0,
) -> Iterator[Server]:
    """`nemo-mlx-serve ARGS --port P`, answered /health, stopped (SIGTERM) afterwards. The
    environment's NEMO_MLX_API_KEY is left out: a test gives its key as an argument."""
    inherited = {k: v for k, v in os.environ.items() if k != "NEMO_MLX_API_KEY"}
    port = free_port()
    log = (log_dir or Path(os.environ.get("TMPDIR", "/tmp"))) / f"nemo-mlx-serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "nemo_mlx_serve.cli", *args, "--port", str(port)],
            stdout=sink, stderr=subprocess.STDOUT, env={**inherited, **(env or {})},
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", port, process, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {process.returncode}:\n{server.output()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{server.output()}")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.unlink(missing_ok=True)


def cli_outputs(command: str, model: str, audio: Path, out: Path, cache: Path, *extra: str) -> dict:
    """What `parakeet` / `canary` writes for `audio`: {format: text}."""
    out.mkdir(parents=True, exist_ok=True)
    script = Path(sys.executable).parent / command
    subprocess.run(
        [str(script), str(audio), "--model", model, "--output-format", "all",
         "--output-dir", str(out), "--cache-dir", str(cache), "--quiet", *extra],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return {p.suffix[1:]: p.read_text() for p in out.iterdir()}


@contextlib.contextmanager
def stalled_upload(server: Server, api_key: str | None = None) -> Iterator[None]:
    """An upload that has sent its headers and the start of its body, then nothing: a request
    the server is still receiving for as long as the block lasts (a round waits for such
    company, up to --max-wait-ms). Closed at the end, so the server drops it."""
    key = f"Authorization: Bearer {api_key}\r\n".encode() if api_key else b""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n" + key +
                     b"Content-Type: multipart/form-data; boundary=b0undary\r\n"
                     b"Content-Length: 100000\r\n\r\n--b0undary\r\n")  # fmt: skip
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/health", timeout=5).json()["receiving"] < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the server never began receiving the stalled upload")
            time.sleep(0.02)
        yield
