"""Shared fixtures: the real server as a subprocess, on a free port, stopped after use."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from server_process import free_port, running_server

StartServer = Callable[..., AbstractContextManager[tuple[str, subprocess.Popen]]]


@contextmanager
def start_server(*args: str, timeout: float = 180.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """`nemo-mlx-serve ARGS --port FREE` until /health answers (`running_server`); yields
    (base URL, process), the process with its log's path as `log_path`."""
    with running_server(*args, timeout=timeout) as server:
        server.process.log_path = server.log  # type: ignore[attr-defined]
        yield server.url, server.process


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
def streamed(cache_dir: Path) -> Callable[[str, object], tuple]:
    """`streamed(ref, samples)`: `Parakeet.transcribe_stream()` (default context and chunk,
    as the server streams) fed `samples` (mono float at the model's rate) in 0.1 s pieces,
    in this process: (its transcript, the finalized stream), what a streaming route must
    give for the same audio."""
    import numpy as np

    import nemo_mlx_parakeet as parakeet

    models: dict[str, parakeet.Parakeet] = {}

    def run(ref: str, samples):
        if ref not in models:
            models[ref] = parakeet.load(ref, cache_dir=cache_dir, verbose=False)
        model = models[ref]
        samples = np.asarray(samples, dtype=np.float32)
        step = model.sample_rate // 10
        with model.transcribe_stream() as stream:
            for start in range(0, len(samples), step):
                stream.add_audio(samples[start : start + step])
            return stream.finalize(), stream

    return run


@pytest.fixture(scope="session")
def stream_reference(streamed) -> Callable[[str, object], str]:
    """`stream_reference(ref, samples)`: the text of `streamed(ref, samples)`."""
    return lambda ref, samples: streamed(ref, samples)[0].text
