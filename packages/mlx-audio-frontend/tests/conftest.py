"""Shared paths and NeMo reference data for the front-end tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
AUDIO_DIR = REPO / "tests" / "fixtures" / "audio"
FEATURES_DIR = REPO / "tests" / "fixtures" / "features"


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    return AUDIO_DIR


@pytest.fixture(scope="session")
def nemo_meta() -> dict:
    return json.loads((FEATURES_DIR / "nemo_features.json").read_text())


@pytest.fixture(scope="session")
def nemo_arrays() -> dict[str, np.ndarray]:
    with np.load(FEATURES_DIR / "nemo_features.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(params=["native", "mlx"])
def frontend_path(request, monkeypatch) -> str:
    """Each NeMo comparison on both CPU paths: the native pass (`cpu_logmel`, the default
    where it applies) and MLX's (`MLX_AUDIO_FRONTEND_NATIVE=off`)."""
    from mlx_audio_frontend import LogMelConfig, cpu_logmel

    monkeypatch.setenv("MLX_AUDIO_FRONTEND_NATIVE", "on" if request.param == "native" else "off")
    if request.param == "native":  # built here (CI has the C compiler MLX itself needs)
        assert cpu_logmel.usable(LogMelConfig(n_mels=80, win_length=400))
    return request.param
