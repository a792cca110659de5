"""Importing this module runs `configure()`: `import mlx_cpu_runtime.auto` before `mlx`."""

from .runtime import configure

STATUS = configure()
