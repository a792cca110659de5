"""The checkpoint facts both apps share: class names, frame seconds, padding, array inputs."""

from __future__ import annotations

import pytest

from speech_transcript.checkpoints import (
    MULTITASK_CLASS,
    PARAKEET_CLASSES,
    array_rate,
    frame_seconds,
    model_class_problem,
    padding_for,
    sample_rate,
    speech_spans,
)
from speech_transcript.precision import load_settings


def test_each_app_takes_its_classes_and_names_the_other_command():
    for model_class in PARAKEET_CLASSES:  # the list itself is held by `supported` below
        assert model_class_problem("m", model_class, "parakeet") is None
        assert model_class_problem("m", model_class, "canary") == (
            "m is a Parakeet model: use the `parakeet` command"
        )
    assert model_class_problem("m", MULTITASK_CLASS, "canary") is None
    assert model_class_problem("m", MULTITASK_CLASS, "parakeet") == (
        "m is a Canary model (EncDecMultiTaskModel): use the `canary` command"
    )
    supported = (
        "`parakeet` runs EncDecRNNTBPEModel, EncDecCTCModelBPE, EncDecHybridRNNTCTCBPEModel, "
        "EncDecRNNTBPEEOUModel, EncDecHybridRNNTCTCBPEEOUModel, EncDecRNNTBPEModelWithPrompt, "
        "EncDecHybridRNNTCTCBPEModelWithPrompt, EncDecMultiTalkerRNNTBPEModel, "
        "EncDecRNNTModel, EncDecCTCModel, EncDecHybridRNNTCTCModel; "
        "`canary` runs EncDecMultiTaskModel"
    )
    for app in ("canary", "parakeet"):
        assert model_class_problem("m", "x.Other", app) == (
            f"m: model class 'x.Other' is not supported; {supported}"
        )


def test_frame_seconds_from_the_stride_in_seconds_or_samples():
    assert frame_seconds({"window_stride": 0.01}, 8) == pytest.approx(0.08)
    assert frame_seconds({"n_window_stride": 160, "sample_rate": 16000}, 4) == pytest.approx(0.04)
    assert frame_seconds({}, 8) == pytest.approx(0.08)  # NeMo's default 10 ms
    assert sample_rate({}) == 16000
    assert sample_rate({"sample_rate": 8000}) == 8000


def test_padding_to_one_second_half_in_front():
    assert padding_for(16000, 16000) == (0, 0)
    assert padding_for(20000, 16000) == (0, 0)
    assert padding_for(15999, 16000) == (0, 1)
    assert padding_for(6000, 16000) == (5000, 5000)
    assert padding_for(6001, 16000) == (4999, 5000)


def test_only_arrays_take_a_source_rate():
    class Samples:  # anything with a shape and a dtype, as numpy and MLX arrays
        shape, dtype = (3,), "float32"

    assert array_rate(Samples(), 8000) == 8000
    assert array_rate(Samples(), None) is None
    assert array_rate("a.wav", 8000) is None
    assert array_rate(b"RIFF", 8000) is None


def test_load_settings(capsys):
    hints: list[str] = []
    name, notify = load_settings("app", None, None, gpu=False, verbose=True, error=RuntimeError,
                                 hint=hints.append)  # fmt: skip
    assert (name, hints) == ("float32", ["app"])
    notify("converting")
    assert capsys.readouterr().err == "app: converting\n"
    assert load_settings("app", "float16", 8, gpu=True, verbose=False, error=RuntimeError,
                         hint=hints.append) == ("float16", None)  # fmt: skip
    assert hints == ["app"]
    with pytest.raises(RuntimeError, match="quantize must be 8 or 4 bits"):
        load_settings("app", None, 3, gpu=True, verbose=False, error=RuntimeError)


def test_speech_spans_round_inwards_grow_to_a_second_and_join():
    frame = 1280  # 80 ms at 16 kHz
    # 1.00-2.50 s: frames 12.5 -> 13 and 31.25 -> 31, inwards
    assert speech_spans([(1.0, 2.5)], 16000 * 10, 16000, frame) == [(13, 31)]
    # frames 63-66 (0.24 s) grow to 13 frames (1.04 s: NeMo's 1 s minimum), 5 on each side
    assert speech_spans([(5.0, 5.3)], 16000 * 10, 16000, frame) == [(58, 71)]
    # at the input's end it grows backwards, within the input (125 frames)
    assert speech_spans([(9.8, 10.0)], 16000 * 10, 16000, frame) == [(112, 125)]
    # 13-25 grows to 12-25 and 28-30 to 22-35, into the one before: one span; a segment
    # inside one frame: none
    segments = [(1.0, 2.0), (2.2, 2.4), (4.0, 4.05)]
    assert speech_spans(segments, 16000 * 10, 16000, frame) == [(12, 35)]
