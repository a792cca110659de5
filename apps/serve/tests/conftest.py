"""Shared fixtures: the real server as a subprocess, on a free port, stopped after use."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

StartServer = Callable[..., AbstractContextManager[tuple[str, subprocess.Popen]]]


def free_port() -> int:
    """A TCP port nothing listens on now (the OS's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def start_server(*args: str, timeout: float = 180.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """`nemo-mlx-serve ARGS --port FREE` until /health answers; yields (base URL, process).
    The server's output goes to a file whose tail is in the error if it does not start."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="nemo-mlx-serve-", suffix=".log")[1])
    command = [sys.executable, "-m", "nemo_mlx_serve.cli", *args, "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the server exited ({process.returncode}):\n{log.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the server did not start in {timeout:g} s:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        process.log_path = log  # type: ignore[attr-defined]  (for tests that read the log)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.unlink(missing_ok=True)


@pytest.fixture(name="start_server", scope="session")
def start_server_fixture() -> StartServer:
    """`with start_server("--model", "demo") as (base_url, process): ...`"""
    return start_server


@pytest.fixture(name="free_port", scope="session")
def free_port_fixture() -> Callable[[], int]:
    return free_port


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One conversion cache for the servers and the in-process references."""
    return tmp_path_factory.mktemp("nemo-mlx-cache")


@pytest.fixture(scope="session")
def stream_reference(cache_dir: Path) -> Callable[[str, object], str]:
    """`stream_reference(ref, samples)`: the text of `Parakeet.transcribe_stream()` (default
    context and chunk, as the server streams) fed `samples` (mono float at the model's rate)
    in 0.1 s pieces, in this process: what a streaming route must give for the same audio."""
    import numpy as np

    import nemo_mlx_parakeet as parakeet

    models: dict[str, parakeet.Parakeet] = {}

    def reference(ref: str, samples) -> str:
        if ref not in models:
            models[ref] = parakeet.load(ref, cache_dir=cache_dir, verbose=False)
        model = models[ref]
        samples = np.asarray(samples, dtype=np.float32)
        step = model.sample_rate // 10
        with model.transcribe_stream() as stream:
            for start in range(0, len(samples), step):
                stream.add_audio(samples[start : start + step])
            return stream.finalize().text

    return reference
