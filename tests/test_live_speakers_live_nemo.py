"""Live parity: the live word rule (apps/parakeet's `live_speakers.py`) against NeMo's own
functions of its speaker-tagged streaming (`multispk_transcribe_utils`, NeMo 3.0.0), called
on random cases: `fix_frame_time_step` (token frames lined up with the new tokens) and
`get_word_dict_content_online` (a word's frames and speaker), edge cases included (frames
past the probabilities, repeated frames, one-token words). Runs where NeMo is importable.
"""

from __future__ import annotations

import numpy as np
import pytest

from nemo_mlx_parakeet.live_speakers import fix_frame_time_step, speaker_of, word_frames

pytestmark = pytest.mark.reference

torch = pytest.importorskip("torch")
utils = pytest.importorskip("nemo.collections.asr.parts.utils.multispk_transcribe_utils")
omegaconf = pytest.importorskip("omegaconf")

CFG = omegaconf.OmegaConf.create(
    {"left_frame_shift": -1, "right_frame_shift": 0, "min_sigmoid_val": 1e-2,
     "max_num_of_spks": 4, "log": False}
)  # fmt: skip


def _frames(rng, count: int) -> list[int]:
    return sorted(int(f) for f in rng.integers(0, 30, count))


def test_fix_frame_time_step_equals_nemo():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        words = int(rng.integers(0, 5))
        tokens = words + int(rng.integers(0, 5))
        frames = _frames(rng, int(rng.integers(1, 10)))
        nemo = utils.fix_frame_time_step(CFG, ["t"] * tokens, ["w"] * words, list(frames))
        assert fix_frame_time_step(tokens, words, list(frames)) == nemo


def test_word_frames_and_speaker_equal_nemo():
    rng = np.random.default_rng(1)
    for case in range(2000):
        total = int(rng.integers(1, 40))
        preds = rng.uniform(0, 1, (total, 4)).astype(np.float32)
        if case % 5 == 0:
            preds[:, int(rng.integers(0, 4))] = 0.0  # a silent speaker: clamped means tie
        count = int(rng.integers(1, 4))
        frames = _frames(rng, count + int(rng.integers(0, 4)))
        position = int(rng.integers(0, len(frames) - count + 1))
        nemo = utils.get_word_dict_content_online(
            CFG, "w", 0, torch.from_numpy(preds), ["x"] * count, frames, position, 0.08
        )
        start, end = word_frames(frames, position, count, total)
        assert (start, end) == (nemo["frame_stt"], nemo["frame_end"]), case
        assert f"speaker_{speaker_of(preds, start, end)}" == nemo["speaker"], case
