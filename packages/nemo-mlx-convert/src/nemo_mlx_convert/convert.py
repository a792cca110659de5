"""`.nemo` -> model directory: read, check, map, write atomically."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ml_dtypes
import numpy as np

from . import __version__
from .errors import ConversionError
from .mapping import MODEL_CLASSES, encoder_problem, map_state_dict, supported_classes
from .model_dir import (
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    TOKENIZER_DIR,
    WEIGHTS_FILE,
    ModelDirectoryConfig,
    Source,
)
from .nemo_archive import CONFIG_NAME, WEIGHTS_NAME, NemoArchive
from .safetensors_io import DTYPE_CODES, PlannedTensor, write_safetensors
from .torch_checkpoint import load_state_dict

Dtype = Literal["float32", "bfloat16", "float16"]
Progress = Callable[[str, int, int], None]  # (stage, done, total) in bytes


@dataclass(frozen=True)
class ConversionSummary:
    """What a conversion produced: for the CLI's summary line and for tests."""

    output: Path
    model_class: str
    parameters: int
    bytes_written: int
    tensors: int
    dropped: int
    seconds: float


def sha256_of(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with path.open("rb") as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress("hash", done, total)
    return digest.hexdigest()


def convert_nemo(
    source: str | Path,
    output: str | Path,
    *,
    dtype: Dtype = "float32",
    force: bool = False,
    hf_repo: str | None = None,
    hf_revision: str | None = None,
    sha256: str | None = None,
    progress: Progress | None = None,
) -> ConversionSummary:
    """Convert a `.nemo` file into a model directory at `output`.

    The directory is assembled under a temporary name next to `output` and renamed into
    place only when complete, so a failure leaves nothing behind. An existing `output` is
    an error unless `force`.
    """
    started = time.perf_counter()
    source, output = Path(source), Path(output)
    if output.exists() and not force:
        raise ConversionError(f"{output} already exists (use --force to replace it)")
    with NemoArchive(source) as archive:
        nemo_config, model_class, references = _checked_contents(archive, source)
        digest = sha256 or sha256_of(source, progress)
        staging = _staging_directory(output)
        try:
            checkpoint = _extract_weights(archive, staging, progress)
            tokenizer_files = _copy_artifacts(archive, references, staging)
            planned, dropped = _write_weights(
                checkpoint, staging / WEIGHTS_FILE, model_class, dtype, digest, progress
            )
            checkpoint.unlink()
            config = ModelDirectoryConfig(
                format=FORMAT,
                format_version=FORMAT_VERSION,
                model_class=model_class,
                nemo_config=nemo_config,
                source=_source_record(source, digest, hf_repo, hf_revision),
                dtype=dtype,
                tokenizer_files=tokenizer_files,
                dropped_tensors=dropped,
                auxiliary_models=_auxiliary_models(archive),
                converter_version=__version__,
            )
            (staging / CONFIG_FILE).write_text(json.dumps(config.model_dump(), indent=1) + "\n")
            if output.exists():
                shutil.rmtree(output)
            os.replace(staging, output)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    parameters = sum(int(np.prod(p.shape, dtype=np.int64)) for p in planned.values())
    total_bytes = sum(p.nbytes for p in planned.values())
    return ConversionSummary(
        output, model_class, parameters, total_bytes, len(planned), len(config.dropped_tensors),
        time.perf_counter() - started,
    )  # fmt: skip


def _checked_contents(archive: NemoArchive, source: Path) -> tuple[dict[str, Any], str, list[str]]:
    """The model's config, its class and its `nemo:` references, once the archive is known
    to hold the weights and every file the config refers to (checked before any writing)."""
    nemo_config = _model_config(archive.config())
    model_class = _model_class(nemo_config, source)
    if not archive.has(WEIGHTS_NAME):
        raise ConversionError(f"{source}: the archive has no {WEIGHTS_NAME}")
    references = sorted(set(_artifact_references(nemo_config)))
    missing = [r for r in references if not archive.has(r.removeprefix("nemo:"))]
    if missing:
        raise ConversionError(
            f"{source}: the config refers to files the archive lacks: {', '.join(missing)}"
        )
    return nemo_config, model_class, references


def _staging_directory(output: Path) -> Path:
    """A new directory beside `output`, to be renamed into place only when complete.

    mkdtemp makes it private; it gets the mode of an ordinary directory (0777 less the
    umask), as the result is one.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    return staging


def _extract_weights(archive: NemoArchive, staging: Path, progress: Progress | None) -> Path:
    """The archive's torch checkpoint, extracted into `staging` (a tar member cannot be mapped)."""
    checkpoint = staging / WEIGHTS_NAME
    archive.extract(
        WEIGHTS_NAME, checkpoint, _counter(progress, "extract", archive.size(WEIGHTS_NAME))
    )
    return checkpoint


def _write_weights(
    checkpoint: Path,
    target: Path,
    model_class: str,
    dtype: Dtype,
    digest: str,
    progress: Progress | None,
) -> tuple[dict[str, PlannedTensor], dict[str, str]]:
    """The checkpoint's tensors, mapped to the MLX model's names, written to `target` in
    `dtype`; returns what was written and what the mapping dropped (name -> reason)."""
    mapped = map_state_dict(_model_weights(load_state_dict(checkpoint)), model_class)
    planned = {name: _plan(array, dtype) for name, array in mapped.tensors.items()}
    total_bytes = sum(p.nbytes for p in planned.values())
    metadata = {"format": FORMAT, "source_sha256": digest}
    write_safetensors(target, planned, metadata, _counter(progress, "write", total_bytes))
    return planned, mapped.dropped


def _counter(progress: Progress | None, stage: str, total: int) -> Callable[[int], None]:
    """A callback that adds up the byte counts it is given and reports the running total."""
    done = 0

    def count(amount: int) -> None:
        nonlocal done
        done += amount
        if progress:
            progress(stage, done, total)

    return count


def _source_record(
    source: Path, digest: str, hf_repo: str | None, hf_revision: str | None
) -> Source:
    """Where the model directory came from, for the record in its config."""
    return Source(
        file_name=source.name,
        sha256=digest,
        size=source.stat().st_size,
        hf_repo=hf_repo,
        hf_revision=hf_revision,
    )


def _model_config(config: dict[str, Any]) -> dict[str, Any]:
    """The model's config: a training config nests it under `model:` (with `trainer:`,
    `exp_manager:` beside it); NeMo's `save_to` writes it at the top."""
    nested = config.get("model")
    if "target" not in config and "_target_" not in config and isinstance(nested, dict):
        return nested
    return config


def _model_weights(state: dict[str, Any]) -> dict[str, Any]:
    """The parameters: a Lightning checkpoint keeps them under `state_dict` (with `epoch`,
    `global_step` and the like beside them); `save_to` writes them at the top."""
    nested = state.get("state_dict")
    if isinstance(nested, dict) and not any(isinstance(v, np.ndarray) for v in state.values()):
        return nested
    return state


def _auxiliary_models(archive: NemoArchive) -> list[str]:
    """Models the archive holds beside the main one, as NeMo saves them: a
    `<name>_config.yaml` with a `<name>_weights.ckpt` (canary-1b-v2's CTC aligner,
    `timestamps_asr_model`, which NeMo restores and uses for its timestamps)."""
    suffix = "_config.yaml"
    return sorted(
        name.removesuffix(suffix)
        for name in archive.names()
        if name.endswith(suffix)
        and name != CONFIG_NAME  # the main model's model_config.yaml / model_weights.ckpt
        and archive.has(name.removesuffix(suffix) + "_weights.ckpt")
    )


def _model_class(config: Mapping[str, Any], source: Path) -> str:
    target = config.get("target") or config.get("_target_")
    if not isinstance(target, str) or not target:
        raise ConversionError(f"{source}: {CONFIG_NAME} names no model class (no `target`)")
    if target not in MODEL_CLASSES:
        raise ConversionError(
            f"model class {target!r} is not supported; supported: {', '.join(supported_classes())}"
        )
    if problem := encoder_problem(config, target):
        raise ConversionError(f"{source}: {problem}")
    return target


def _artifact_references(node: Any) -> Iterator[str]:
    """Every `nemo:<file>` string in the config: the tokenizer files the archive must hold."""
    if isinstance(node, str) and node.startswith("nemo:"):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _artifact_references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _artifact_references(value)


def _copy_artifacts(archive: NemoArchive, references: list[str], staging: Path) -> dict[str, str]:
    directory = staging / TOKENIZER_DIR
    directory.mkdir()
    files = {}
    for reference in references:
        name = Path(reference.removeprefix("nemo:")).name  # never a path from inside the archive
        archive.extract(reference.removeprefix("nemo:"), directory / name)
        files[reference] = f"{TOKENIZER_DIR}/{name}"
    return files


def _plan(array: np.ndarray, dtype: Dtype) -> PlannedTensor:
    """How to write one tensor: floating tensors in `dtype`, integer ones unchanged.

    Conversion happens in `produce`, one tensor at a time, while the file is written.
    """
    shape = tuple(int(n) for n in array.shape)
    source = array.dtype.name
    if source not in DTYPE_CODES:
        raise ConversionError(f"tensor dtype {source} cannot be written")
    if array.dtype.kind not in "fV" and source != "bfloat16":
        return PlannedTensor(source, shape, lambda: np.ascontiguousarray(array))
    target = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    return PlannedTensor(dtype, shape, lambda: np.ascontiguousarray(array.astype(target)))
