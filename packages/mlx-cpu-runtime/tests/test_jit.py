"""MLX's CPU kernels built for this machine (jit.py): in fresh interpreters with empty kernel
caches, the kernels are built by the wrapper with its flags (other libraries than with
`MLX_CPU_JIT=off`), compute bit for bit the same outputs, and no other compile is touched."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from mlx_cpu_runtime import jit

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux", reason="the wrapper is Linux-only")

_PROBE = """
import hashlib, json, shutil
import mlx_cpu_runtime
status = mlx_cpu_runtime.configure()
import mlx.core as mx, numpy as np

@mx.compile
def kernel(x, y):
    # a polynomial, a division and a transcendental: what FMA contraction or other
    # vector code could change if the flags were not value-safe
    p = ((x * 0.5 + 1.25) * x - 0.75) * x + y / (1.0 + x * x)
    return mx.sigmoid(p) * mx.tanh(y) + mx.exp(-x * x)

rng = np.random.default_rng(0)
x = mx.array(rng.normal(size=(257, 1031)).astype(np.float32))
y = mx.array(rng.normal(size=(257, 1031)).astype(np.float32))
out = np.array(kernel(x, y))
cache = mlx_cpu_runtime.kernel_cache()
libraries = sorted(p for p in cache.glob("*.so"))
print(json.dumps({
    "jit": status.jit, "reason": status.jit_reason, "gxx": shutil.which("g++"),
    "digest": hashlib.sha256(out.tobytes()).hexdigest(),
    "libraries": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in libraries},
}))
"""


def _probe(tmp: Path, env: dict[str, str]) -> dict:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLX_CPU_")}
    environment.update(env, TMPDIR=str(tmp))  # an empty kernel cache of its own
    # without the wrapper this interpreter put on PATH when it configured itself
    folders = environment.get("PATH", "").split(os.pathsep)
    environment["PATH"] = os.pathsep.join(f for f in folders if not jit._is_wrapper(f))
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                            env=environment, check=True)  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def _needs_gxx() -> None:
    if shutil.which("g++") is None:
        pytest.fail("this test needs g++ (MLX's CPU backend compiles its kernels with it)")


def test_kernels_built_for_this_machine_compute_the_same_bits(tmp_path):
    _needs_gxx()
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    on = _probe(tmp_path / "on", {})
    off = _probe(tmp_path / "off", {"MLX_CPU_JIT": "off"})
    assert (on["jit"], on["reason"]) == (jit.FLAGS, "")
    assert (off["jit"], off["reason"]) == (None, "turned off by MLX_CPU_JIT")
    assert Path(on["gxx"]).parent.name.startswith("jit-")  # the wrapper is first on PATH
    assert not Path(off["gxx"]).parent.name.startswith("jit-")
    assert on["libraries"]
    assert on["libraries"].keys() == off["libraries"].keys()
    # other machine code (built with the flags) ...
    assert on["libraries"] != off["libraries"]
    # ... and the same outputs, bit for bit
    assert on["digest"] == off["digest"]


def test_a_child_process_wraps_the_real_compiler_once(tmp_path):
    """A child inherits the wrapper on PATH: its own configure() must not wrap the wrapper."""
    _needs_gxx()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLX_CPU_")}
    probe = ("import mlx_cpu_runtime, os; mlx_cpu_runtime.configure(); "
             "print(os.environ['PATH'])")  # fmt: skip
    first = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           env=environment, check=True).stdout.strip()  # fmt: skip
    second = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env={**environment, "PATH": first}, check=True).stdout.strip()  # fmt: skip
    assert second == first
    folders = first.split(os.pathsep)
    wrappers = [f for f in folders if jit._is_wrapper(f)]
    assert len(wrappers) == 1
    real = shutil.which("g++", path=os.pathsep.join(f for f in folders if f not in wrappers))
    assert f'exec "{os.path.abspath(real)}"' in (Path(wrappers[0]) / "g++").read_text()


def test_only_mlx_kernel_builds_get_the_flags(tmp_path):
    _needs_gxx()
    # the wrapper this interpreter's configure() put first on PATH (the root conftest runs it)
    folder = Path(shutil.which("g++")).parent
    assert jit._is_wrapper(str(folder))
    with open("/proc/cpuinfo") as info:
        if " avx " not in info.read().replace("\n", " "):
            pytest.skip("the probe tells the flags apart by __AVX__, which this CPU lacks")
    # -march=native defines __AVX__ on this CPU: the source fails to build with the flags
    source = '#ifdef __AVX__\n#error "built with -march=native"\n#endif\nint probe;\n'
    plain = tmp_path / "plain.cpp"
    kernel = tmp_path / "mlx" / "0.0.0" / "cpu" / "kernel.cpp"
    kernel.parent.mkdir(parents=True)
    for path in (plain, kernel):
        path.write_text(source)
    wrapper = str(folder / "g++")
    build = [wrapper, "-fPIC", "-shared", "-o", str(tmp_path / "out.so")]
    assert subprocess.run([*build, str(plain)], capture_output=True).returncode == 0
    refused = subprocess.run([*build, str(kernel)], capture_output=True, text=True)
    assert refused.returncode != 0
    assert "built with -march=native" in refused.stderr
