"""From what a user types (`nvidia/parakeet-tdt-0.6b-v3`, `model.nemo`, a directory) to a
converted model directory, converting once and caching by the source's content hash."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .convert import Dtype, Progress, convert_nemo, sha256_of
from .errors import ConversionError
from .model_dir import ModelDirectory, open_model_directory


def default_cache_dir() -> Path:
    """`$NEMO_MLX_CACHE`, else `$XDG_CACHE_HOME/nemo-mlx`, else `~/.cache/nemo-mlx`."""
    if explicit := os.environ.get("NEMO_MLX_CACHE"):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "nemo-mlx"


def resolve_model(
    reference: str | Path,
    *,
    cache_dir: str | Path | None = None,
    dtype: Dtype = "float32",
    revision: str | None = None,
    progress: Progress | None = None,
    on_convert: Callable[[str], None] | None = None,
) -> ModelDirectory:
    """A ready model directory for `reference`: a model directory (used as it is), a `.nemo`
    file or a Hugging Face repo id (converted into the cache the first time)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = Path(reference).expanduser()
    if path.is_dir():
        return open_model_directory(path)
    if path.suffix == ".nemo" or path.exists():
        if not path.is_file():
            raise ConversionError(f"{path}: no such file")
        return _cached(path, None, None, cache, dtype, progress, on_convert)
    if looks_like_repo_id(str(reference)):
        nemo_file, sha256, resolved_revision = download_nemo(str(reference), revision)
        return _cached(
            nemo_file, str(reference), resolved_revision, cache, dtype, progress, on_convert, sha256
        )
    raise ConversionError(
        f"{reference}: not a model directory, a .nemo file or a Hugging Face repo id"
    )


def resolve_model_of(
    reference: str | Path,
    model_class: str,
    kind: str,
    *,
    cache_dir: str | Path | None = None,
    on_convert: Callable[[str], None] | None = None,
) -> ModelDirectory:
    """`resolve_model(reference)` for a model package that runs one NeMo class (a frame VAD,
    a Sortformer): ConversionError, one line naming `reference`, for a model of another
    class, as for a missing file or anything that is not a model."""
    directory = resolve_model(reference, cache_dir=cache_dir, on_convert=on_convert)
    if directory.model_class != model_class:
        found = directory.model_class.rsplit(".", 1)[-1] or "unknown"
        expected = model_class.rsplit(".", 1)[-1]
        raise ConversionError(f"{reference}: not a {kind} ({expected}); its model class is {found}")
    return directory


def _cached(
    nemo_file: Path,
    hf_repo: str | None,
    revision: str | None,
    cache: Path,
    dtype: Dtype,
    progress: Progress | None,
    on_convert: Callable[[str], None] | None,
    sha256: str | None = None,
) -> ModelDirectory:
    digest = sha256 or sha256_of(nemo_file, progress)
    target = cache / f"{nemo_file.stem}-{digest[:16]}-{dtype}"
    if target.is_dir():
        try:
            return open_model_directory(target)
        except ConversionError:
            pass  # a damaged cache entry: convert again over it
    if on_convert is not None:
        on_convert(f"converting {nemo_file.name} into {target}")
    convert_nemo(nemo_file, target, dtype=dtype, force=True, hf_repo=hf_repo, hf_revision=revision,
                 sha256=digest, progress=progress)  # fmt: skip
    return open_model_directory(target)


def looks_like_repo_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "/", "~"))


def download_nemo(repo_id: str, revision: str | None) -> tuple[Path, str | None, str | None]:
    """The repo's `.nemo` file through the Hugging Face cache.

    Online, the repo's file list names the `.nemo` (and its SHA-256, which keys our cache).
    Offline (HF_HUB_OFFLINE=1), or when the Hub cannot be reached, a cached copy is used.
    """
    from huggingface_hub import HfApi, hf_hub_download

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if not offline:
        try:
            info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
        except Exception as err:  # the hub client raises many types (HTTP, DNS, auth)
            cached = _cached_nemo(repo_id)
            if cached is not None:
                return cached, None, revision
            raise ConversionError(f"{repo_id}: cannot get it from the Hugging Face Hub ({_short(err)}) and it is "
                                  "not in the local cache") from None  # fmt: skip
        nemo = [s for s in info.siblings or [] if s.rfilename.endswith(".nemo")]
        if len(nemo) != 1:
            found = ", ".join(s.rfilename for s in nemo) or "none"
            raise ConversionError(f"{repo_id}: expected one .nemo file in the repo, found {found}")
        try:
            path = hf_hub_download(repo_id, nemo[0].rfilename, revision=info.sha)
        except Exception as err:
            raise ConversionError(f"{repo_id}: download failed ({_short(err)})") from None
        return Path(path), nemo[0].lfs.sha256 if nemo[0].lfs else None, info.sha
    cached = _cached_nemo(repo_id)
    if cached is None:
        raise ConversionError(
            f"{repo_id}: not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
        )
    return cached, None, revision


def _cached_nemo(repo_id: str) -> Path | None:
    """A `.nemo` of the repo already in the Hugging Face cache, if any."""
    from huggingface_hub import scan_cache_dir

    try:
        repos = scan_cache_dir().repos
    except Exception:  # no cache directory yet, or an unreadable one
        return None
    for repo in repos:
        if repo.repo_id == repo_id:
            for rev in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
                for file in rev.files:
                    if file.file_name.endswith(".nemo"):
                        return Path(file.file_path)
    return None


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:160]
