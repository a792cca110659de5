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
