"""NeMo's diarization of the multi-speaker test set with the demo Sortformer, and its DER.

    python tests/reference/make_diarization_testset.py     # the test set (espeak-ng)
    python tools/train_demo_sortformer.py                  # the model (34 min on one thread)
    python tests/reference/make_demo_sortformer_fixture.py

Restores tests/fixtures/diarization/demo_sortformer.nemo with NeMo 3.0.0 and runs NeMo's own
`diarize()` on the test set's FLAC files (paths, as a user passes them; default
post-processing), then scores the lines against the true RTTM with NeMo's own scorer
(`tests/der_scoring.py`: `score_labels_from_rttm_labels`, NIST md-eval semantics), in NeMo's
"full" (no collar, overlaps scored) and "forgiving" (0.25 s collar, overlaps not scored) modes,
together with two trivial answers (one speaker over the whole recording; one speaker over
the true speech).

Then NeMo's ASR + diarization on one conversation (`ASR_CONVERSATION`): the demo ASR model
(apps/parakeet/.../demo/demo.nemo) transcribes it with word timestamps (`transcribe(...,
timestamps=True)`, batch 1), and NeMo's `OfflineDiarWithASR.get_word_level_json_list` (its
diarizer config's defaults: anchor at the word's start, offset 0) gives each word a speaker
from the time-ordered `diarize()` labels; `right_speaker_share` is the share of those words
whose speaker is, through NeMo's scorer's speaker map, the true speaker of a turn the word's
middle lies in. Writes tests/fixtures/diarization/demo_sortformer.json.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import nemo
import torch
from nemo.collections.asr.models import ASRModel, SortformerEncLabelModel
from nemo.collections.asr.parts.utils import diarization_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import der_scoring

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "tests" / "fixtures" / "diarization"
TESTSET = FOLDER / "testset"
DEMO_ASR = ROOT / "apps" / "parakeet" / "src" / "nemo_mlx_parakeet" / "demo" / "demo.nemo"
ASR_CONVERSATION = "two_speakers"


def words_with_speakers(path: Path, lines: list[str]) -> list[dict]:
    """NeMo's words of the demo ASR model on `path` and the speaker NeMo's ASR + diarization
    pipeline gives each, from the diarization `lines`."""
    asr = ASRModel.restore_from(str(DEMO_ASR), map_location="cpu").eval()
    hyp = asr.transcribe([str(path)], batch_size=1, timestamps=True, verbose=False)[0]
    words = hyp.timestamp["word"]
    labels = sorted(lines, key=lambda line: tuple(float(x) for x in line.split()[:2]))
    pipeline = object.__new__(diarization_utils.OfflineDiarWithASR)
    pipeline.params = {"word_ts_anchor_pos": "start"}
    pipeline.word_ts_anchor_offset = 0.0
    speakers = pipeline.get_word_level_json_list(
        words=[w["word"] for w in words], diar_labels=labels,
        word_ts=[[w["start"], w["end"]] for w in words],
    )  # fmt: skip
    return [{"word": w["word"], "start": w["start"], "end": w["end"], "speaker": s["speaker"]}
            for w, s in zip(words, speakers, strict=True)]  # fmt: skip


def right_share(words: list[dict], reference: list[str], truth_map: dict[str, str]) -> float:
    """The share of words whose speaker is the mapped true speaker of a turn around the
    word's middle (a word in no true turn counts as wrong)."""
    turns = [(float(a), float(b), truth_map.get(s)) for a, b, s in (r.split() for r in reference)]
    right = 0
    for w in words:
        middle = (w["start"] + w["end"]) / 2
        right += any(a <= middle <= b and s == w["speaker"] for a, b, s in turns)
    return right / max(len(words), 1)


def main() -> None:
    torch.set_num_threads(1)
    meta = json.loads((TESTSET / "testset.json").read_text())
    names = sorted(meta["conversations"])
    model = SortformerEncLabelModel.restore_from(
        str(FOLDER / "demo_sortformer.nemo"), map_location="cpu"
    ).eval()
    paths = [str(TESTSET / meta["conversations"][n]["audio"]) for n in names]
    lines = model.diarize(audio=paths, batch_size=1, verbose=False)
    hypotheses = {n: list(clip_lines) for n, clip_lines in zip(names, lines, strict=True)}
    references = {n: der_scoring.rttm_labels(TESTSET / f"{n}.rttm") for n in names}
    durations = {n: meta["conversations"][n]["duration"] for n in names}
    answers = {"nemo": hypotheses, **der_scoring.one_speaker(references, durations)}
    der = {
        setting: {
            answer: der_scoring.score(references, labels, durations, setting)
            for answer, labels in answers.items()
        }
        for setting in der_scoring.SETTINGS
    }
    per_conversation = {
        n: {
            s: der_scoring.score({n: references[n]}, {n: hypotheses[n]}, durations, s)["der"]
            for s in der_scoring.SETTINGS
        }
        for n in names
    }
    asr_words = words_with_speakers(paths[names.index(ASR_CONVERSATION)],
                                    hypotheses[ASR_CONVERSATION])  # fmt: skip
    truth_map = der_scoring.speaker_map(
        references[ASR_CONVERSATION], hypotheses[ASR_CONVERSATION], durations[ASR_CONVERSATION]
    )
    training = json.loads((FOLDER / "demo_sortformer.training.json").read_text())
    record = {
        "generated_by": "python tests/reference/make_demo_sortformer_fixture.py",
        "nemo_version": nemo.__version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "model": "demo_sortformer.nemo (tools/train_demo_sortformer.py)",
        "model_training": {k: training[k] for k in ("train_minutes", "steps", "parameters")},
        "postprocessing": "NeMo's defaults (PostProcessingParams()): onset 0.5, offset 0.5, "
        "no padding, no minimum durations",
        "scorer": "nemo.collections.asr.metrics.der.score_labels_from_rttm_labels, UEM [0, duration]",
        "der_settings": {k: {"collar": c, "ignore_overlap": o} for k, (c, o) in der_scoring.SETTINGS.items()},
        "diarize_lines": hypotheses,
        "der": der,
        "der_per_conversation": per_conversation,
        "asr_with_speakers": {
            "conversation": ASR_CONVERSATION,
            "asr_model": "apps/parakeet/src/nemo_mlx_parakeet/demo/demo.nemo",
            "words": asr_words,
            "speaker_map": truth_map,
            "right_speaker_share": right_share(asr_words, references[ASR_CONVERSATION], truth_map),
        },
    }  # fmt: skip
    (FOLDER / "demo_sortformer.json").write_text(json.dumps(record, indent=1) + "\n")
    for setting, rows in der.items():
        print(setting, {answer: round(row["der"], 4) for answer, row in rows.items()})


if __name__ == "__main__":
    main()
