"""configure() in fresh interpreters: what it loads, what turns it off, when it is too late."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import mlx_cpu_runtime
from mlx_cpu_runtime import runtime

import pytest

linux_only = pytest.mark.skipif(platform.system() != "Linux", reason="the BLAS swap is Linux-only")

_PROBE = """
import json, sys
{before}
import mlx_cpu_runtime
status = mlx_cpu_runtime.configure()
import mlx.core as mx, numpy as np
a = np.random.default_rng(0).normal(size=(256, 256)).astype(np.float32)
product = np.array(mx.array(a) @ mx.array(a))
maps = open("/proc/self/maps").read() if sys.platform == "linux" else ""
print(json.dumps({{
    "blas": status.blas, "reason": status.blas_reason, "malloc": status.malloc_tuned,
    "too_late": status.too_late, "hint": status.needs_blas_hint,
    "mapped": bool(status.blas) and status.blas in maps,
    "matmul_ok": bool(np.allclose(product, a.astype(np.float64) @ a, atol=1e-3)),
}}))
"""


def _probe(env: dict[str, str] | None = None, before: str = "") -> dict:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLX_CPU_")}
    environment.update(env or {})
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(before=before)],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@linux_only
def test_auto_loads_a_system_blas_that_mlx_then_uses():
    found = runtime.find_blas()
    out = _probe()
    assert out["matmul_ok"]
    if found is None:  # a machine without OpenBLAS/MKL/BLIS: the apps show a hint
        assert out["blas"] is None
        assert out["hint"]
    else:
        assert out["blas"] == found
        assert out["mapped"]
        assert not out["hint"]
    assert out["malloc"] == (platform.libc_ver()[0] == "glibc")


@linux_only
def test_off_keeps_the_reference_blas_without_a_hint():
    out = _probe({"MLX_CPU_BLAS": "off", "MLX_CPU_MALLOC": "off"})
    assert out["blas"] is None
    assert "MLX_CPU_BLAS" in out["reason"]
    assert not out["hint"]
    assert not out["malloc"]
    assert out["matmul_ok"]


@linux_only
def test_explicit_path_that_is_not_a_blas_is_reported(tmp_path):
    bogus = tmp_path / "libnotblas.so"
    bogus.write_bytes(b"not a shared library")
    out = _probe({"MLX_CPU_BLAS": str(bogus)})
    assert out["blas"] is None
    assert str(bogus) in out["reason"]
    assert out["matmul_ok"]


@linux_only
def test_too_late_when_mlx_came_first():
    out = _probe(before="import mlx.core")
    assert out["too_late"]
    assert out["blas"] is None
    assert out["matmul_ok"]


def test_other_systems_are_left_alone(monkeypatch):
    monkeypatch.setattr(runtime, "_STATUS", None)
    monkeypatch.setattr(runtime.platform, "system", lambda: "Darwin")
    status = mlx_cpu_runtime.configure()
    assert status.blas is None
    assert not status.malloc_tuned
    assert not status.needs_blas_hint


def test_find_blas_returns_none_without_candidates(monkeypatch):
    monkeypatch.setattr(runtime.glob, "glob", lambda pattern: [])
    assert runtime.find_blas() is None


def _hints(monkeypatch, capsys, status: runtime.RuntimeStatus, calls: int = 2) -> list[str]:
    monkeypatch.setattr(runtime, "_STATUS", status)
    monkeypatch.setattr(runtime, "_HINTED", False)
    printed = [mlx_cpu_runtime.hint("parakeet") for _ in range(calls)]
    lines = capsys.readouterr().err.splitlines()
    assert printed == [bool(lines)] + [False] * (calls - 1)  # at most once per process
    return lines


def test_hint_once_when_no_blas_was_found(monkeypatch, capsys):
    monkeypatch.delenv("MLX_CPU_BLAS_HINT", raising=False)
    lines = _hints(monkeypatch, capsys, runtime.RuntimeStatus("Linux", blas_reason="not found"))
    assert len(lines) == 1
    assert lines[0].startswith("parakeet: hint:")
    assert "libopenblas0-pthread" in lines[0]


def test_hint_when_mlx_was_imported_first(monkeypatch, capsys):
    monkeypatch.delenv("MLX_CPU_BLAS_HINT", raising=False)
    status = runtime.RuntimeStatus("Linux", blas_reason="mlx was imported first", too_late=True)
    (line,) = _hints(monkeypatch, capsys, status)
    assert "imported before" in line


@pytest.mark.parametrize(
    ("status", "env"),
    [
        (runtime.RuntimeStatus("Linux", blas="/usr/lib/libblas.so.3"), {}),  # a BLAS is loaded
        (
            runtime.RuntimeStatus("Linux", blas_reason="turned off by MLX_CPU_BLAS"),
            {},
        ),  # user's choice
        (runtime.RuntimeStatus("Darwin", blas_reason="not needed"), {}),
        (runtime.RuntimeStatus("Linux", blas_reason="not found"), {"MLX_CPU_BLAS_HINT": "off"}),
    ],
)
def test_no_hint_otherwise(monkeypatch, capsys, status, env):
    monkeypatch.delenv("MLX_CPU_BLAS_HINT", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert _hints(monkeypatch, capsys, status) == []


@linux_only
@pytest.mark.parametrize(
    ("code", "env", "warned"),
    [
        ("import mlx.core\nimport mlx_conformer", {}, True),  # a reordered import
        ("import mlx_conformer\nimport mlx.core", {}, False),
        ("import mlx.core\nimport mlx_conformer", {"MLX_CPU_BLAS": "off"}, False),
    ],
)
def test_importing_mlx_first_is_a_warning_not_a_silent_slowdown(code, env, warned):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLX_CPU_")}
    environment.update(env)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=environment, check=True)  # fmt: skip
    assert ("RuntimeWarning: mlx was imported before mlx_cpu_runtime" in result.stderr) == warned
