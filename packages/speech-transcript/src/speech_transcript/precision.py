"""The dtypes the apps load models in, and the checks of the load options, by name.

Names, not MLX dtypes: this package stays pure Python; an app turns the name into
`getattr(mlx.core, name)`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

DTYPES = ("float32", "bfloat16", "float16")
QUANTIZE_BITS = (8, 4)


def default_dtype(gpu: bool) -> str:
    """float32 on the CPU (bfloat16 has no fast CPU path), bfloat16 on a GPU."""
    return "bfloat16" if gpu else "float32"


def resolve_precision(dtype: str | None, quantize: int | None, *, gpu: bool) -> str:
    """The dtype name to load in (None: the device's default). ValueError with a one-line
    reason if `dtype` is not one of DTYPES or `quantize` not None or one of QUANTIZE_BITS."""
    dtype = dtype or default_dtype(gpu)
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; choose from {', '.join(DTYPES)}")
    if quantize is not None and quantize not in QUANTIZE_BITS:
        raise ValueError(f"quantize must be 8 or 4 bits, got {quantize}")
    return dtype


def load_settings(
    prog: str,
    dtype: str | None,
    quantize: int | None,
    *,
    gpu: bool,
    verbose: bool,
    error: type[Exception],
    hint: Callable[[str], object] | None = None,
) -> tuple[str, Callable[[str], None] | None]:
    """What an app's `load` starts from: the dtype name (`resolve_precision`; a bad value is
    raised as the app's `error`) and, when `verbose`, the printer of conversion notices,
    `<prog>: <message>` on stderr (None when quiet). When `verbose`, `hint(prog)` is called
    first (the apps pass mlx-cpu-runtime's hint, which this pure-Python package cannot
    import), so that it comes before any notice."""
    try:
        name = resolve_precision(dtype, quantize, gpu=gpu)
    except ValueError as err:
        raise error(str(err)) from None
    if not verbose:
        return name, None
    if hint is not None:
        hint(prog)
    return name, lambda message: print(f"{prog}: {message}", file=sys.stderr)


def load_auxiliary(
    prog: str,
    option: str,
    resolve: Callable[..., T],
    choice: object,
    *,
    cache_dir: str | Path | None,
    verbose: bool,
    error: type[Exception],
    failures: tuple[type[Exception], ...] = (ValueError,),
) -> T:
    """A second model an app's `option` names (`--vad`, `--diarize`): `resolve(choice,
    cache_dir=, on_convert=)` (the model package's), with conversion notices as `load`'s;
    the `failures` it raises become one line, `error("<option>: ...")`."""
    _, notify = load_settings(prog, None, None, gpu=False, verbose=verbose, error=error)
    try:
        return resolve(choice, cache_dir=cache_dir, on_convert=notify)
    except failures as err:
        raise error(f"{option}: {err}") from None
