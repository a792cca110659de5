"""The model directory: what the converter writes and every loader reads.

```
<model>/config.json        ModelDirectoryConfig below (format "nemo-mlx", version 1)
<model>/model.safetensors  MLX names and layouts (see mapping.py)
<model>/tokenizer/...      the tokenizer files of the .nemo, original bytes and names
```

`open_model_directory` also accepts the layout the existing MLX ports publish: a plain
NeMo config as `config.json` next to `model.safetensors` (same tensor names and layouts).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConversionError

FORMAT = "nemo-mlx"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"


class Source(BaseModel):
    """Where the weights came from: enough to re-run the conversion and to key the cache."""

    model_config = ConfigDict(extra="forbid")

    file_name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    hf_repo: str | None = None
    hf_revision: str | None = None


class ModelDirectoryConfig(BaseModel):
    """`config.json` of a converted model."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["nemo-mlx"]
    format_version: Literal[1]
    model_class: str
    nemo_config: dict[str, Any]
    source: Source
    dtype: Literal["float32", "bfloat16", "float16"]
    tokenizer_files: dict[str, str] = Field(
        default_factory=dict,
        description="`nemo:<name>` reference in nemo_config -> path in the directory",
    )
    dropped_tensors: dict[str, str] = Field(
        default_factory=dict, description="NeMo tensor -> why it was dropped"
    )
    auxiliary_models: list[str] = Field(
        default_factory=list,
        description="models the .nemo holds beside the main one (`<name>_config.yaml` with "
        "`<name>_weights.ckpt`, e.g. canary-1b-v2's `timestamps_asr_model`); not converted",
    )
    converter_version: str


class ModelDirectory:
    """An opened model directory: its NeMo config, class, weights file and tokenizer files."""

    def __init__(
        self, path: Path, nemo_config: dict[str, Any], config: ModelDirectoryConfig | None
    ) -> None:
        self.path = path
        self.nemo_config = nemo_config
        self.config = config  # None for an existing MLX port's directory

    @property
    def model_class(self) -> str:
        if self.config is not None:
            return self.config.model_class
        return str(self.nemo_config.get("target", ""))

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS_FILE

    def artifact(self, reference: str) -> Path | None:
        """The file for a `nemo:<name>` reference of the NeMo config, if the directory has it."""
        if self.config is not None and reference in self.config.tokenizer_files:
            return self.path / self.config.tokenizer_files[reference]
        name = reference.removeprefix("nemo:")
        candidate = self.path / TOKENIZER_DIR / name
        return candidate if candidate.is_file() else None


def open_model_directory(path: str | Path) -> ModelDirectory:
    """Open and validate a model directory; one clear error line for anything wrong."""
    path = Path(path)
    if not path.is_dir():
        raise ConversionError(f"{path}: not a model directory")
    config_path, weights = path / CONFIG_FILE, path / WEIGHTS_FILE
    for required in (config_path, weights):
        if not required.is_file():
            raise ConversionError(f"{path}: model directory without {required.name}")
    try:
        raw = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConversionError(f"{config_path}: not valid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise ConversionError(f"{config_path}: expected a JSON object")
    if raw.get("format") == FORMAT:
        try:
            config = ModelDirectoryConfig.model_validate(raw)
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            raise ConversionError(f"{config_path}: field {field!r}: {first['msg']}") from None
        return ModelDirectory(path, config.nemo_config, config)
    if "encoder" in raw and ("target" in raw or "_target_" in raw):
        return ModelDirectory(path, raw, None)  # an existing MLX port's layout
    raise ConversionError(f"{config_path}: neither a nemo-mlx model config nor a NeMo model config")
