"""Live parity on 30 minutes of audio: NeMo's long-audio recipe against the default policy.

NeMo transcribes parakeet-tdt-0.6b-v2 / v3 with full attention up to ~24 minutes; for longer
audio its recipe is `change_attention_model("rel_pos_local_attn", [256, 256])` with
`change_subsampling_conv_chunking_factor(1)`. This builds a tiny model with NeMo's classes
from parakeet-tdt-0.6b-v2's published config as `make_checkpoint_fixtures.py` does (sizes
shrunk, every flag kept), but with v2's own 8 attention heads, which the policy's budget
counts; runs NeMo's recipe on 30 minutes of the test clips with silences between them; and
checks that `Parakeet.transcribe` on the same samples, left to its default policy, switches
to the recipe and gives NeMo's token ids, text, and token and word times to the frame.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

import nemo_mlx_parakeet as parakeet

pytestmark = pytest.mark.reference

torch = pytest.importorskip("torch", reason="live NeMo parity needs the `reference` group (torch)")
pytest.importorskip(
    "nemo.collections.asr",
    reason="live NeMo parity needs the `reference` group (nemo_toolkit[asr])",
)
OmegaConf = pytest.importorskip("omegaconf").OmegaConf

ROOT = Path(__file__).resolve().parents[1]
MINUTES = 30
RECIPE = ("rel_pos_local_attn", [256, 256])


@pytest.fixture(scope="module")
def base():
    """tests/reference/make_checkpoint_fixtures.py (and through it make_model_fixtures.py),
    imported as make_canary_fixture.py imports its base."""
    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    try:
        import make_checkpoint_fixtures
    finally:
        sys.path.pop(0)
    return make_checkpoint_fixtures


@pytest.fixture(scope="module")
def model_path(base, tmp_path_factory) -> Path:
    """parakeet-tdt-0.6b-v2's published config with the checkpoint fixture's sizes, heads
    kept at v2's 8, tuned as the fixtures are (decisions that depend on the audio), saved
    with NeMo's `save_to`."""
    name = "parakeet-tdt-0.6b-v2"
    tmp = tmp_path_factory.mktemp("v2")
    spec = base.CHECKPOINTS[name]
    published, _ = base.full_config(name, spec)
    tokenizer = base.train_tokenizer(tmp / "tokenizer", published, spec)
    config, _ = base.shrink(published, tokenizer, hybrid=False)
    config["encoder"]["n_heads"] = published["encoder"]["n_heads"]
    assert config["encoder"]["n_heads"] == 8
    torch.manual_seed(base.SEED)
    model = spec.cls(cfg=OmegaConf.create(config)).eval()
    speech = [base.base.load_clip(clip) for clip in base.base.SPEECH_CLIPS]
    texts = base.corpus(spec.text, random.Random(base.SEED))[:48]
    base.base.make_decisions_depend_on_audio(model, speech, texts, spec.blank_share)
    path = tmp / f"{name}-8-heads.nemo"
    model.save_to(str(path))
    return path


@pytest.fixture(scope="module")
def signal(base) -> np.ndarray:
    """30 minutes: the test clips over and over, 0.1-1.0 s of silence between them."""
    clips = [base.base.load_clip(clip) for clip in base.base.CLIPS]
    rng = np.random.default_rng(0)
    total = MINUTES * 60 * 16000
    parts, length = [], 0
    while length < total:
        for clip in clips:
            gap = np.zeros(int(rng.integers(1600, 16000)), dtype=np.float32)
            parts += [clip, gap]
            length += len(clip) + len(gap)
    return np.concatenate(parts)[:total].astype(np.float32)


@pytest.fixture(scope="module")
def nemo(model_path, signal):
    """NeMo's hypothesis under its recipe, and the parameters the recipe added.

    NeMo 3.0.0's `change_attention_model` builds the new attention layers without passing
    the encoder's `use_bias` on, so for a bias-free checkpoint (`use_bias: false`, as
    parakeet-tdt-0.6b-v2 and v3) they get q, k, v and output biases, which
    `load_state_dict(strict=False)` leaves at their random initialisation: NeMo's output then
    depends on the torch generator's state. The recipe means the checkpoint's attention with
    a local window; those biases are zeroed here, which is what a bias-free layer computes.
    """
    from nemo.collections.asr.models import ASRModel

    model = ASRModel.restore_from(str(model_path), map_location="cpu").eval()
    before = set(model.state_dict())
    model.change_attention_model(*RECIPE)
    model.change_subsampling_conv_chunking_factor(1)
    added = sorted(name for name in model.state_dict() if name not in before)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in added:
                parameter.zero_()
    # One torch thread: NeMo's greedy decoding is thousands of tiny calls (an LSTM step per
    # token), each of which waits on torch's thread pool when the cores are busy. Measured
    # on this transcribe, 2 cores shared with other work: 2 threads 280 s (89 s of CPU),
    # 1 thread 86 s (28 s of CPU).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            (hypothesis,) = model.transcribe([signal], batch_size=1, timestamps=True, verbose=False)
    finally:
        torch.set_num_threads(threads)
    return hypothesis, added


@pytest.fixture(scope="module")
def ours(model_path, signal, tmp_path_factory):
    model = parakeet.load(model_path, cache_dir=tmp_path_factory.mktemp("cache"), verbose=False)
    assert model.encoder.config.n_heads == 8
    lines: list[str] = []
    model.notice = lines.append
    result = model.transcribe(signal)
    assert (model.encoder.config.self_attention_model, model.encoder.config.att_context) == (
        "rel_pos",
        (-1, -1),
    )
    return model, result, lines


def test_the_default_policy_runs_nemos_recipe(ours, signal):
    model, _, lines = ours
    frames = len(signal) // 160
    assert model.attention_for(1, frames) == (RECIPE[0], tuple(RECIPE[1]))
    assert model.full_attention_bytes(1, frames) == 8 * 22500**2 * 4  # 15.1 GiB
    assert lines == [
        "1800.0 s of audio: full attention would take 15.1 GiB of scores (budget 10 GiB), "
        "so NeMo's long-audio recipe runs: rel_pos_local_attn [256, 256]"
    ]


def test_nemos_recipe_adds_random_biases_to_bias_free_attention(nemo):
    """What the `nemo` fixture corrects (NeMo 3.0.0; README: Long inputs)."""
    _, added = nemo
    expected = sorted(f"encoder.layers.{i}.self_attn.linear_{name}.bias"
                      for i in range(2) for name in ("q", "k", "v", "out"))  # fmt: skip
    assert added == expected


def test_token_ids_equal_nemos(ours, nemo):
    _, result, _ = ours
    nemo, _ = nemo
    expected = nemo.y_sequence.tolist()
    assert len(expected) > 1000  # the tuned model speaks all along the 30 minutes
    assert [t.id for t in result.tokens] == expected
    assert result.text == nemo.text


def test_token_times_equal_nemos_to_the_frame(ours, nemo):
    model, result, _ = ours
    nemo, _ = nemo
    frame = model.frame_seconds
    chars = nemo.timestamp["char"]
    assert len(chars) == len(result.tokens)
    for token, theirs in zip(result.tokens, chars, strict=True):
        expected = [min(result.duration, theirs[k] * frame) for k in ("start_offset", "end_offset")]
        assert [token.start, token.end] == pytest.approx(expected, abs=1e-9), (token, theirs)


def test_word_times_equal_nemos(ours, nemo):
    _, result, _ = ours
    nemo, _ = nemo
    words = nemo.timestamp["word"]
    assert [w.text for w in result.words] == [w["word"] for w in words]
    for mine, theirs in zip(result.words, words, strict=True):
        for key in ("start", "end"):
            expected = min(result.duration, theirs[key])
            assert getattr(mine, key) == pytest.approx(expected, abs=1e-9), (mine, theirs)
