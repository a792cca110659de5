"""Live parity: NeMo's diarization post-processing with every option, against ours.

The fixtures hold NeMo's `diarize()` under its default post-processing; here NeMo's own
`ts_vad_post_processing` and `generate_diarization_output_lines` (what `diarize()` runs per
speaker) take the fixtures' NeMo probabilities with thresholds, padding and minimum durations
set, and the lines must be identical. Runs where NeMo is importable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlx_diarization import PostProcessing, speaker_turns

pytestmark = pytest.mark.reference

torch = pytest.importorskip("torch", reason="live NeMo parity needs the `reference` group (torch)")
vad_utils = pytest.importorskip("nemo.collections.asr.parts.utils.vad_utils")
speaker_utils = pytest.importorskip("nemo.collections.asr.parts.utils.speaker_utils")
OmegaConf = pytest.importorskip("omegaconf").OmegaConf

CHECKPOINTS = Path(__file__).resolve().parent / "fixtures" / "checkpoints"
PARAMS = [
    PostProcessing(),
    PostProcessing(onset=0.6, offset=0.4),
    PostProcessing(pad_onset=0.1, pad_offset=0.05),
    PostProcessing(min_duration_on=0.2),
    PostProcessing(min_duration_off=0.3),
    PostProcessing(onset=0.7, offset=0.3, pad_onset=0.04, pad_offset=0.12,
                   min_duration_on=0.1, min_duration_off=0.25),
]  # fmt: skip


def _nemo_lines(preds: np.ndarray, params: PostProcessing) -> list[str]:
    """`SortformerEncLabelModel._diarize_output_processing` for one recording (offset 0)."""
    cfg = OmegaConf.structured(vad_utils.PostProcessingParams(**vars(params)))
    timestamps = []
    for speaker in range(preds.shape[1]):
        segments = vad_utils.ts_vad_post_processing(
            torch.from_numpy(preds[:, speaker]), cfg, unit_10ms_frame_count=8
        )
        timestamps.append([[round(s, 2), round(e, 2)] for s, e in (segments + 0.0).tolist()])
    return speaker_utils.generate_diarization_output_lines(timestamps, preds.shape[1])


def _predictions() -> list[np.ndarray]:
    out = []
    for name in ("diar_sortformer_4spk-v1", "diar_streaming_sortformer_4spk-v2"):
        with np.load(CHECKPOINTS / f"{name}.npz") as data:
            out += [data[k] for k in data.files if k.endswith("/preds")]
    return out


@pytest.mark.parametrize("params", PARAMS, ids=str)
def test_turns_equal_nemos_post_processing(params):
    for preds in _predictions():
        ours = [turn.line for turn in speaker_turns(preds, 8, params)]
        assert ours == _nemo_lines(preds, params)


def test_every_option_changes_the_turns():
    """So that the comparison above exercises each option, not only the defaults."""
    preds = np.concatenate(_predictions())
    default = [turn.line for turn in speaker_turns(preds, 8)]
    for params in PARAMS[1:]:
        assert [turn.line for turn in speaker_turns(preds, 8, params)] != default, params
