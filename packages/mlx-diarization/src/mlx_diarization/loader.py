"""`load(path)`: a converted Sortformer model directory -> a `Diarizer`."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx

from mlx_audio_frontend import LogMel, LogMelConfig

from .diarizer import Diarizer
from .model import Sortformer

MODEL_CLASS = "nemo.collections.asr.models.sortformer_diar_models.SortformerEncLabelModel"


def load(path: str | Path) -> Diarizer:
    """Read nemo-mlx-convert's directory (`config.json`, `model.safetensors`), float32.

    A directory of another class is refused with one line naming it.
    """
    path = Path(path)
    document = json.loads((path / "config.json").read_text())
    nemo_config = document.get("nemo_config", document)
    target = document.get("model_class") or nemo_config.get("target") or nemo_config.get("_target_")
    if target and target != MODEL_CLASS:
        raise ValueError(f"{path}: model class {target!r} is not a Sortformer ({MODEL_CLASS})")
    model = Sortformer.from_nemo(nemo_config, mx.load(str(path / "model.safetensors")))
    frontend = LogMel(LogMelConfig.from_nemo(nemo_config["preprocessor"]))
    return Diarizer(model, frontend, model.config.streaming)
