"""NeMo's Canary timestamps (frame tokens `<|n|>` in the output) on a variant of the fixture model.

Needs the `reference` dependency group and `tests/fixtures/models/canary.nemo` (made by
`make_canary_fixture.py`). From the repository root:

    python tests/reference/make_canary_timestamps_fixture.py
    # on the project machine: /work/ref-venv/bin/python tests/reference/make_canary_timestamps_fixture.py

canary-1b-flash and canary-180m-flash write timestamps into their output when the prompt has
`<|timestamp|>`: frame tokens `<|n|>` (n = encoder frame) around words, which NeMo's
`transcribe` parses with `process_aed_timestamp_outputs` (`asr/parts/utils/timestamp_utils.py`)
into word and segment times. The fixture model never emits its frame tokens (the fixture
script pushes every special token but EOS down), so this script restores it, sets the head
bias of the frame tokens `<|0|>`..`<|15|>` to one common value (`FRAME_BIAS_ABOVE_TEXT` above
the median bias of the text pieces; JSON `weight_choices`), saves the result with `save_to`
as `canary_timestamps.nemo`, and records what NeMo's `transcribe` gives on the five speech
clips, with `timestamps=True` (prompt `<|timestamp|>`) and `timestamps=False` (prompt
`<|notimestamp|>`; NeMo still runs the same parser then), greedy at batch size 1 and 5 and
beam search (the checkpoint's beam settings: 4 beams, length penalty 0) at batch size 1.
The bias is unconditional: the random model emits frame tokens under either prompt, without
any order; what is checked is the parsing, which is the same for any order.

Writes to tests/fixtures/models/ (both files or none):
- `canary_timestamps.nemo`: the model, from `save_to` (only the head bias differs from
  `canary.nemo`);
- `canary_timestamps.json`: versions, command, weight choices, `frame_seconds` (window stride
  times subsampling factor), per prompt its ids, and per decoding and clip NeMo's hypothesis:
  `ids` (`y_sequence`), `raw_text` (`ids_to_text` of the ids, frame tokens included), `text`
  (after NeMo's parsing), `timestamp` (`word` and `segment` lists with `start_offset`,
  `end_offset` in encoder frames and `start`, `end` in seconds); `stats` counts the cases
  covered. tests/reference/CANARY.md ("Timestamps") describes NeMo's rules.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import make_canary_fixture as canary_fixture  # tests/reference/, on sys.path when run as a script
import make_model_fixtures as base
import nemo
import numpy as np
import torch
from nemo.collections.asr.models import ASRModel, EncDecMultiTaskModel
from omegaconf import OmegaConf

OUT = base.OUT
COMMAND = "python tests/reference/make_canary_timestamps_fixture.py"
SOURCE = OUT / "canary.nemo"
NAME = "canary_timestamps"
CLIPS = canary_fixture.CLIPS
# The other test clips, through `transcribe` once (en ASR with timestamps): leading and trailing
# digital silence, an odd length, and one under 1 s, which NeMo pads to 1 s, half on each side.
OTHER_CLIPS = [c for c in base.CLIPS if c not in CLIPS]
FRAME_BOOST = 2.0  # added to the frame tokens' head bias on top of undoing their suppression
# The prompts (transcribe keyword arguments; `timestamps` is added per run).
PROMPTS: dict[str, dict[str, str]] = {
    "en_asr_pnc": {"source_lang": "en", "target_lang": "en", "pnc": "yes"},
    "en_asr_nopnc": {"source_lang": "en", "target_lang": "en", "pnc": "no"},
    "en_de_ast_pnc": {"source_lang": "en", "target_lang": "de", "pnc": "yes"},
}
PAIR = re.compile(r"<\|(\d+)\|>(.*?)<\|(\d+)\|>")


def frame_token_ids(model: EncDecMultiTaskModel) -> list[int]:
    return [i for t, i in model.tokenizer.special_tokens.items() if t[2:-2].isdigit()]


@torch.no_grad()
def bias_frame_tokens(model: EncDecMultiTaskModel) -> dict[str, Any]:
    """Undo the fixture's suppression of the frame tokens, and raise them FRAME_BOOST more.

    The fixture centred every token's logit with the head bias, then pushed the special
    tokens down by `SUPPRESS`; giving that back (plus a little) leaves the frame tokens
    centred among themselves, so which one wins depends on the decoder state.
    """
    bias = model.log_softmax.mlp.layer0.bias
    frames = frame_token_ids(model)
    before = bias[frames].clone()
    bias[frames] += canary_fixture.SUPPRESS + FRAME_BOOST
    return {
        "frame_tokens": [min(frames), max(frames)],
        "frame_token_bias_added": canary_fixture.SUPPRESS + FRAME_BOOST,
        "rule": f"the fixture's special-token suppression ({canary_fixture.SUPPRESS}) undone, "
        f"plus {FRAME_BOOST}",
        "frame_token_bias_before": [float(b) for b in before],
        "frame_token_bias_after": [float(b) for b in bias[frames]],
    }


def record(model: EncDecMultiTaskModel, hyp: Any) -> dict[str, Any]:
    ids = base.to_jsonable(hyp.y_sequence)
    timestamp = hyp.timestamp if isinstance(hyp.timestamp, dict) else {}
    return {
        "ids": ids,
        "raw_text": model.tokenizer.ids_to_text(ids),
        "text": hyp.text,
        "timestamp": {key: base.to_jsonable(timestamp.get(key, [])) for key in ("word", "segment")},
    }


def run(
    model: EncDecMultiTaskModel,
    signals: list[np.ndarray],
    prompt: str,
    timestamps: bool,
    batch_size: int,
    clips: list[str] = CLIPS,
) -> tuple[dict[str, Any], list[list[int]]]:
    with canary_fixture.capture_prompts(model) as calls:
        hyps = model.transcribe(
            signals, batch_size=batch_size, return_hypotheses=True, verbose=False,
            timestamps=timestamps, **PROMPTS[prompt],
        )  # fmt: skip
    model.eval()  # `transcribe` leaves the decoder in training mode
    used = [row.tolist() for call in calls for row in call]
    return {c: record(model, h) for c, h in zip(clips, hyps, strict=True)}, used


@torch.no_grad()
def encoded_lengths(model: EncDecMultiTaskModel, signals: list[np.ndarray]) -> list[int]:
    """Encoder frames of each clip as `transcribe` sees it (under 1 s: padded to 1 s)."""
    out = []
    for signal in signals:
        padded = np.pad(signal, (0, max(0, 16000 - len(signal))))
        features, feature_len = model.preprocessor(
            input_signal=torch.from_numpy(padded)[None], length=torch.tensor([len(padded)])
        )
        _, length = model.encoder(audio_signal=features, length=feature_len)
        out.append(int(length[0]))
    return out


def stats(runs: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    hyps = [h for per_prompt in runs.values() for per_clip in per_prompt.values()
            for h in per_clip.values()]  # fmt: skip
    words = [w for h in hyps for w in h["timestamp"]["word"]]
    return {
        "outputs": len(hyps),
        "outputs_with_words": sum(bool(h["timestamp"]["word"]) for h in hyps),
        "outputs_with_frame_tokens_but_no_pair": sum(
            "<|" in h["raw_text"] and not PAIR.search(h["raw_text"].strip()) for h in hyps
        ),
        "words": len(words),
        "segments": sum(len(h["timestamp"]["segment"]) for h in hyps),
        "outputs_with_several_segments": sum(len(h["timestamp"]["segment"]) > 1 for h in hyps),
        "empty_pairs_skipped": sum(
            sum(not m.group(2).strip() for m in PAIR.finditer(h["raw_text"].strip())) for h in hyps
        ),
        "words_ending_a_segment": sum(w["word"][-1] in ".?!" for w in words),
        "distinct_start_offsets": len({w["start_offset"] for w in words}),
        "words_ending_before_they_start": sum(w["end_offset"] < w["start_offset"] for w in words),
    }


def check(meta: dict[str, Any]) -> None:
    s = meta["stats"]
    assert s["outputs_with_words"] >= s["outputs"] // 2, s
    assert s["outputs_with_several_segments"] >= 3, s
    assert s["empty_pairs_skipped"] >= 1, s
    assert s["words_ending_a_segment"] >= 3, s
    assert s["distinct_start_offsets"] >= 6, s


def main() -> None:
    torch.manual_seed(base.SEED)
    signals = [base.load_clip(clip) for clip in CLIPS]
    source = ASRModel.restore_from(str(SOURCE), map_location="cpu").eval()
    assert isinstance(source, EncDecMultiTaskModel)
    chosen = bias_frame_tokens(source)
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        path = staging / f"{NAME}.nemo"
        source.save_to(str(path))
        model = ASRModel.restore_from(str(path), map_location="cpu").eval()
        cfg = model.cfg
        frame_seconds = cfg.preprocessor.window_stride * cfg.encoder.subsampling_factor
        prompts: dict[str, Any] = {}
        runs: dict[str, dict[str, Any]] = {
            "transcribe": {}, "transcribe_batched": {}, "transcribe_no_timestamps": {},
            "transcribe_beam": {},
        }  # fmt: skip
        for prompt in PROMPTS:
            for key, timestamps, batch in (
                ("transcribe", True, 1),
                ("transcribe_batched", True, len(CLIPS)),
                ("transcribe_no_timestamps", False, 1),
            ):
                runs[key][prompt], used = run(model, signals, prompt, timestamps, batch)
                name = prompt if timestamps else f"{prompt}_notimestamp"
                prompts.setdefault(name, {"ids": used[0]})
                assert all(u == prompts[name]["ids"] for u in used)
        others = [base.load_clip(clip) for clip in OTHER_CLIPS]
        other, _ = run(model, others, "en_asr_pnc", True, 1, OTHER_CLIPS)
        for clip, signal, frames in zip(
            OTHER_CLIPS, others, encoded_lengths(model, others), strict=True
        ):
            other[clip] |= {"num_samples": len(signal), "encoded_length": frames}
        canary_fixture.set_decoding(model, "beam", beam_size=4)
        for prompt in PROMPTS:
            runs["transcribe_beam"][prompt], _ = run(model, signals, prompt, True, 1)
        canary_fixture.set_decoding(model, "greedy")
        for entry in prompts.values():
            entry["pieces"] = model.tokenizer.ids_to_tokens(entry["ids"])
        differs = canary_fixture.differences(runs["transcribe"], runs["transcribe_batched"])
        meta = {
            "generated_by": COMMAND,
            "nemo_version": nemo.__version__,
            "torch_version": torch.__version__,
            "python": sys.version.split()[0],
            "derived_from": "canary.nemo (tests/reference/make_canary_fixture.py)",
            "weights_sha256": hashlib.sha256(
                b"".join(p.detach().numpy().tobytes() for p in model.parameters())
            ).hexdigest(),
            "weight_choices": chosen,
            "frame_seconds": frame_seconds,
            "window_stride": cfg.preprocessor.window_stride,
            "subsampling_factor": cfg.encoder.subsampling_factor,
            "segment_delimiters": [".", "?", "!"],
            "beam": {"beam_size": 4, "length_penalty": 0.0, "batch_size": 1},
            "prompts": prompts,
            **runs,
            "transcribe_batched_differences": differs,
            "transcribe_other_clips": other,
            "min_duration_padding": {"seconds": 1.0, "direction": "both"},
            "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        }
        meta["stats"] = {key: stats({key: runs[key]}) for key in runs}
        meta["stats"] = {**meta["stats"]["transcribe"], "per_run": meta["stats"]}
        print(f"{NAME}: weight choices {json.dumps(chosen)[:200]}")
        print(f"  stats: {json.dumps(meta['stats'])}")
        print(f"  batched differs: {differs}")
        check(meta)
        (staging / f"{NAME}.json").write_text(json.dumps(base.to_jsonable(meta), indent=1) + "\n")
        for out in sorted(staging.iterdir()):
            shutil.copyfile(out, OUT / out.name)
            print(f"wrote {OUT / out.name} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
