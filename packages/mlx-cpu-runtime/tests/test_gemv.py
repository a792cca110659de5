"""The sgemm shim (gemv.py): one-row and one-column products through the BLAS's sgemv, in
fresh interpreters: MLX's `cblas_sgemm` is the shim's, and every transposition, stride and
beta gives the product numpy computes in float64."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys

from mlx_cpu_runtime import gemv, native, runtime

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux", reason="the BLAS swap is Linux-only")

_PROBE = """
import ctypes, json
import mlx_cpu_runtime
status = mlx_cpu_runtime.configure()
import mlx.core as mx, numpy as np
bound = ctypes.cast(ctypes.CDLL(None).cblas_sgemm, ctypes.c_void_p).value
shim = status.gemv and ctypes.cast(ctypes.CDLL(status.gemv).cblas_sgemm, ctypes.c_void_p).value
rng = np.random.default_rng(0)
worst = 0.0
for m, k, n in [(1, 300, 700), (700, 300, 1), (1, 1, 5), (5, 1, 1), (1, 300, 1), (3, 300, 7)]:
    for ta in (False, True):
        for tb in (False, True):
            a = rng.normal(size=(k, m) if ta else (m, k)).astype(np.float32)
            b = rng.normal(size=(n, k) if tb else (k, n)).astype(np.float32)
            a64, b64 = (a.T if ta else a).astype(np.float64), (b.T if tb else b).astype(np.float64)
            x, y = mx.array(a), mx.array(b)
            x, y = (x.T if ta else x), (y.T if tb else y)
            c = rng.normal(size=(m, n)).astype(np.float32)
            for got, want in [
                (x @ y, a64 @ b64),
                (mx.addmm(mx.array(c), x, y, alpha=0.5, beta=2.0), 0.5 * a64 @ b64 + 2.0 * c),
                (x[::2] @ y, a64[::2] @ b64),  # rows with a stride
            ]:
                scale = max(1.0, float(np.abs(want).max()))
                worst = max(worst, float(np.abs(np.array(got) - want).max()) / scale)
print(json.dumps({"gemv": status.gemv, "reason": status.gemv_reason,
                  "bound_to_shim": bool(shim) and bound == shim, "worst": worst}))
"""


def _probe(env: dict[str, str]) -> dict:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLX_CPU_")}
    environment.update(env)
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                            env=environment, check=True)  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_one_row_products_go_through_sgemv_and_stay_exact(tmp_path):
    if runtime.find_blas() is None or native.compiler() is None:
        pytest.fail("this test needs a system OpenBLAS and a C compiler (CI installs both)")
    out = _probe({"XDG_CACHE_HOME": str(tmp_path)})  # compiled afresh into an empty cache
    assert out["gemv"] is not None, out["reason"]
    assert out["gemv"].startswith(str(tmp_path))
    assert out["bound_to_shim"]  # MLX's cblas_sgemm is the shim's
    assert out["worst"] < 1e-5
    again = _probe({"XDG_CACHE_HOME": str(tmp_path)})  # the cached library is reused
    assert again["gemv"] == out["gemv"]


def test_off_leaves_mlx_on_the_blas_sgemm():
    out = _probe({"MLX_CPU_GEMV": "off"})
    assert out["gemv"] is None
    assert "MLX_CPU_GEMV" in out["reason"]
    assert not out["bound_to_shim"]
    assert out["worst"] < 1e-5


def test_no_compiler_is_a_reason_not_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CC", "")
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    path, reason = gemv.build()
    assert path is None
    assert "compiler" in reason


def test_a_failing_compiler_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CC", shutil.which("false") or "/bin/false")
    path, reason = gemv.build()
    assert path is None
    assert "failed" in reason


def test_the_flags_are_part_of_the_cache_key(monkeypatch, tmp_path):
    if native.compiler() is None:
        pytest.fail("this test needs a C compiler (CI installs one)")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    source = b"int mlx_cpu_runtime_probe(void) { return 7; }\n"
    plain, reason = native.build(source, "probe")
    assert plain is not None, reason
    again, _ = native.build(source, "probe")
    assert again == plain  # cached
    other, _ = native.build(source, "probe", (*native.FLAGS, "-O3"))
    assert other is not None
    assert other != plain
    assert plain.name.startswith("probe-")
    assert plain.parent == tmp_path / "mlx-cpu-runtime"


def test_load_gives_the_built_library_or_none(monkeypatch, tmp_path):
    if native.compiler() is None:
        pytest.fail("this test needs a C compiler (CI installs one)")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    library = native.load(b"int mlx_cpu_runtime_probe(void) { return 7; }\n", "probe")
    assert library is not None
    assert library.mlx_cpu_runtime_probe() == 7
    assert native.load(b"this is not C\n", "broken") is None  # the caller's non-native path


def test_blas_path_is_the_loaded_blas_else_the_one_that_would_be(monkeypatch):
    loaded = runtime.status().blas
    assert native.blas_path() == (loaded or runtime.find_blas())
    monkeypatch.setattr(runtime, "status", lambda: runtime.RuntimeStatus(
        platform="Linux", blas=None, blas_reason="", malloc_tuned=False, too_late=True))  # fmt: skip
    monkeypatch.setenv("MLX_CPU_BLAS", "off")
    assert native.blas_path() is None


def test_blas_threads_holds_the_count_and_restores_it():
    """The BLAS CI loads (OpenBLAS) has thread control: the count is the given one inside
    the block and the old one after, also when the block raises."""
    blas = native.blas_control()
    if blas is None:
        pytest.fail("this test needs OpenBLAS (CI installs it)")
    before = blas.openblas_get_num_threads()
    with native.blas_threads(None) as threads:
        assert threads == before
    with native.blas_threads(1) as threads:
        assert threads == before
        assert blas.openblas_get_num_threads() == 1
    assert blas.openblas_get_num_threads() == before
    with pytest.raises(RuntimeError), native.blas_threads(1):
        raise RuntimeError("inside")
    assert blas.openblas_get_num_threads() == before


def test_blas_threads_without_thread_control_sets_nothing(monkeypatch):
    monkeypatch.setattr(native, "blas_control", lambda: None)
    with native.blas_threads(1) as threads:
        assert threads is None
