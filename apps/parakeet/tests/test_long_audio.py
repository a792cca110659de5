"""The long-audio policy: full attention within the budget, NeMo's local-attention recipe
beyond it, for that batch only; checkpoints with their own attention pattern keep it.

NeMo parity under the recipe on a 30-minute input is `tests/test_long_audio_live_nemo.py`.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nemo_mlx_parakeet as parakeet
from mlx_audio_frontend import load_audio
from nemo_mlx_parakeet import pieces
from nemo_mlx_parakeet.model import FULL_ATTENTION_BUDGET, LONG_AUDIO_ATTENTION

REPO = Path(__file__).resolve().parents[3]
AUDIO = REPO / "tests" / "fixtures" / "audio"
MODELS = REPO / "tests" / "fixtures" / "models"
LOCAL = ("rel_pos_local_attn", (256, 256))
FULL = ("rel_pos", (-1, -1))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def tdt(cache):
    """rel_pos, context [-1, -1], 4 heads, 8x subsampling: the layout NVIDIA's Parakeets have."""
    return parakeet.load(MODELS / "tdt.nemo", cache_dir=cache, verbose=False)


def frames_for(model, encoded: int) -> int:
    """Feature frames that give `encoded` encoder frames."""
    return encoded * model.encoder.subsampling_factor


def test_the_recipe_is_nemos():
    assert LONG_AUDIO_ATTENTION == ("rel_pos_local_attn", (256, 256))
    assert FULL_ATTENTION_BUDGET == 10 * 2**30


def test_the_default_budget_ends_full_attention_near_24_minutes_for_8_heads():
    """batch x heads x T'^2 x 4 bytes: 8 heads (parakeet-tdt-0.6b-v2 / v3) reach 10 GiB at
    T' = 18318 encoder frames of 80 ms, 24.4 minutes."""
    frames = math.isqrt(FULL_ATTENTION_BUDGET // (8 * 4))
    assert frames == 18317
    assert 24.4 <= frames * 0.08 / 60 < 24.5


def test_full_attention_within_the_budget_local_beyond(tdt):
    heads = tdt.encoder.config.n_heads
    assert tdt.attention_budget == FULL_ATTENTION_BUDGET
    tdt.attention_budget = 4 * heads * 1000**2  # exactly 1000 encoder frames for one input
    try:
        assert tdt.full_attention_bytes(1, frames_for(tdt, 1000)) == tdt.attention_budget
        assert tdt.attention_for(1, frames_for(tdt, 1000)) == FULL
        assert tdt.attention_for(1, frames_for(tdt, 1000) + 1) == LOCAL  # rounds up to 1001
        assert tdt.attention_for(2, frames_for(tdt, 1000)) == LOCAL  # the batch counts
        assert tdt.attention_for(4, frames_for(tdt, 500)) == FULL
        tdt.attention_budget = None  # no limit
        assert tdt.attention_for(64, frames_for(tdt, 10**6)) == FULL
    finally:
        tdt.attention_budget = FULL_ATTENTION_BUDGET
    # The default: a 4-head model runs 30 minutes (22500 frames: 7.5 GiB) with full attention,
    # 35 minutes (26250 frames: 10.3 GiB) with the recipe.
    assert tdt.attention_for(1, 30 * 60 * 100) == FULL
    assert tdt.attention_for(1, 35 * 60 * 100) == LOCAL


def test_models_with_their_own_attention_keep_it(tdt, cache):
    ctc = parakeet.load(MODELS / "ctc.nemo", cache_dir=cache, verbose=False)  # local [16, 16]
    assert ctc.attention_for(1, 10**7) == ("rel_pos_local_attn", (16, 16))
    streaming = parakeet.load(MODELS / "streaming_hybrid.nemo", cache_dir=cache, verbose=False)
    assert streaming.attention_for(1, 10**7) == ("rel_pos", (8, 3))  # chunked_limited
    tdt.encoder.change_attention_model("rel_pos_local_attn", [64, 32])  # --local-attention
    try:
        assert tdt.attention_for(1, 10**7) == ("rel_pos_local_attn", (64, 32))
    finally:
        tdt.encoder.change_attention_model("rel_pos", [-1, -1])
    tdt.encoder.change_attention_model("rel_pos", [40, 40])  # full attention, limited context
    try:
        assert tdt.attention_for(1, 10**7) == ("rel_pos", (40, 40))
    finally:
        tdt.encoder.change_attention_model("rel_pos", [-1, -1])


def test_cache_aware_models_go_in_chunks_beyond_the_budget(cache):
    """Their own attention stays, and its offline form takes memory quadratic in the length:
    beyond the budget an input is cut into 240 s chunks (merged), within it it runs whole."""
    model = parakeet.load(MODELS / "streaming_hybrid.nemo", cache_dir=cache, verbose=False)
    signal = np.zeros(250 * 16000, dtype=np.float32)
    assert len(pieces.split(model, 0, signal, None, 15.0)) == 1
    model.attention_budget = model.full_attention_bytes(1, 250 * 100) - 1
    assert len(pieces.split(model, 0, signal, None, 15.0)) == 2
    assert len(pieces.split(model, 0, signal[: 240 * 16000], None, 15.0)) == 1  # not over a chunk


def test_the_switch_is_for_that_batch_only(tdt):
    """Under a one-byte budget every batch switches; a clip shorter than 256 encoder frames
    each side gives the same tokens and times with local attention [256, 256] as with full
    attention, and the encoder is back to full attention afterwards."""
    clip = np.array(load_audio(AUDIO / "speech_16k_mono.wav"))
    whole = tdt.transcribe(clip)
    lines: list[str] = []
    tdt.attention_budget, tdt.notice = 1, lines.append
    try:
        switched = tdt.transcribe([clip, clip[:16000]], batch_size=2)
    finally:
        tdt.attention_budget, tdt.notice = FULL_ATTENTION_BUDGET, None
    assert [t.id for t in switched[0].tokens] == [t.id for t in whole.tokens]
    times = [(t.start, t.end) for t in whole.tokens]
    assert [(t.start, t.end) for t in switched[0].tokens] == times
    assert (tdt.encoder.config.self_attention_model, tdt.encoder.config.att_context) == FULL
    assert all(not layer.self_attn.local for layer in tdt.encoder.layers)
    assert lines == [
        "2 inputs of up to 3.1 s: full attention would take 0.0 GiB of scores (budget 9.31e-10 "
        "GiB), so NeMo's long-audio recipe runs: rel_pos_local_attn [256, 256]"
    ]


def test_the_command_says_which_recipe_ran(cache):
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(AUDIO / "speech_16k_mono.wav"),
               "--model", str(MODELS / "tdt.nemo"), "--cache-dir", str(cache), "--verbose",
               "--attention-budget", "1e-9"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert ("parakeet: 3.1 s of audio: full attention would take 0.0 GiB of scores (budget 9.31e-10 "
            "GiB), so NeMo's long-audio recipe runs: rel_pos_local_attn [256, 256]") in result.stderr  # fmt: skip
    quiet = subprocess.run([*command[:-1], "100"], capture_output=True, text=True, check=False)
    assert quiet.returncode == 0, quiet.stderr
    assert "long-audio recipe" not in quiet.stderr
