"""TransducerConfig.from_nemo reads NeMo's configs as NeMo does."""

from __future__ import annotations

import copy
import tarfile
from pathlib import Path

import pytest
import yaml

from mlx_transducer import TransducerConfig

MODELS = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "models"


def _config(name: str) -> dict:
    with tarfile.open(MODELS / f"{name}.nemo") as archive:
        return yaml.safe_load(archive.extractfile("./model_config.yaml").read())


def test_tdt_durations_come_from_the_loss_as_nemo_takes_them():
    """NeMo's `set_decoding_type_according_to_loss` sets decoding.durations from
    loss.tdt_kwargs.durations whatever `decoding` or `model_defaults` say."""
    cfg = _config("tdt")
    assert TransducerConfig.from_nemo(cfg).durations == (0, 1, 2, 3, 4)
    stale = copy.deepcopy(cfg)
    stale["decoding"]["durations"] = [0, 1, 2]
    stale["model_defaults"]["tdt_durations"] = [0, 1]
    assert TransducerConfig.from_nemo(stale).durations == (0, 1, 2, 3, 4)


def test_a_tdt_config_without_loss_durations_or_a_mismatched_joint_is_refused():
    cfg = _config("tdt")
    missing = copy.deepcopy(cfg)
    del missing["loss"]["tdt_kwargs"]["durations"]
    with pytest.raises(ValueError, match=r"must list loss\.tdt_kwargs\.durations"):
        TransducerConfig.from_nemo(missing)
    short = copy.deepcopy(cfg)
    short["loss"]["tdt_kwargs"]["durations"] = [0, 1, 2]
    with pytest.raises(ValueError, match=r"num_extra_outputs=5 does not match 3 TDT durations"):
        TransducerConfig.from_nemo(short)


def test_an_rnnt_config_has_no_durations():
    assert TransducerConfig.from_nemo(_config("rnnt")).durations == ()
