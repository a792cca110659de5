"""NeMo's transcripts of the demo model's held-out clips, for the torch-free test.

Needs the `reference` group. From the repository root, after `tools/train_demo_model.py`
has written the model (apps/parakeet/src/nemo_mlx_parakeet/demo/demo.nemo) and the held-out clips
(tests/fixtures/demo/clips/, listed with their texts in heldout.json):

    python tests/reference/make_demo_fixture.py
    # on the project machine: /work/ref-venv/bin/python tests/reference/make_demo_fixture.py

Restores the `.nemo` with NeMo and runs its `transcribe` on every held-out clip (FLAC,
16 kHz, read by NeMo's own loader) and on the package's example clip; writes
tests/fixtures/demo/nemo_transcripts.json: per clip NeMo's text and token ids
(`Hypothesis.y_sequence`) from the TDT head, and the CTC head's text, NeMo's WER over the clips (`word_error_rate`), the model's
SHA-256, versions and this command. tests/test_demo_model.py compares this project's
output with it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import nemo
import torch
from nemo.collections.asr.metrics.wer import word_error_rate
from nemo.collections.asr.models import ASRModel

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "apps" / "parakeet" / "src" / "nemo_mlx_parakeet" / "demo"
FIXTURE = ROOT / "tests" / "fixtures" / "demo"
COMMAND = "python tests/reference/make_demo_fixture.py"


def provenance(command: str, model_file: Path) -> dict:
    """What a demo fixture records of how it was made: the command, NeMo's, torch's and
    Python's versions, and the model's SHA-256 (make_manifest_fixture.py records the same)."""
    return {
        "generated_by": command,
        "nemo_version": nemo.__version__,
        "torch_version": torch.__version__,
        "python": sys.version.split()[0],
        "model_sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
    }


def restore_with_clips() -> tuple[ASRModel, Path, list[str], list[str]]:
    """NeMo's restore of the bundled demo model (eval mode, torch seeded), its file, and
    the held-out clips: their fixture-relative files and their paths."""
    torch.manual_seed(0)
    heldout = json.loads((FIXTURE / "heldout.json").read_text())
    model_file = DEMO / "demo.nemo"
    asr = ASRModel.restore_from(str(model_file), map_location="cpu").eval()
    files = [clip["file"] for clip in heldout["clips"]]
    return asr, model_file, files, [str(FIXTURE / f) for f in files]


def main() -> int:
    torch.manual_seed(0)
    heldout = json.loads((FIXTURE / "heldout.json").read_text())
    model_file = DEMO / "demo.nemo"
    model = ASRModel.restore_from(str(model_file), map_location=torch.device("cpu")).eval()
    paths = [str(FIXTURE / clip["file"]) for clip in heldout["clips"]] + [str(DEMO / "example.wav")]
    refs = [clip["text"] for clip in heldout["clips"]]
    heads = {}
    for head in ("rnnt", "ctc"):  # the TDT head (the model's default), then the CTC head
        model.change_decoding_strategy(decoder_type=head, verbose=False)
        model.eval()
        hyps = model.transcribe(paths, batch_size=1, verbose=False)
        texts = [h.text for h in hyps]
        ids = [_ids(h, model, head) for h in hyps]
        heads[head] = (texts, ids, word_error_rate(texts[:-1], refs))
    texts, ids, wer = heads["rnnt"]
    ctc_texts, ctc_ids, ctc_wer = heads["ctc"]
    out = {
        **provenance(COMMAND, model_file),
        "transcribe": {
            "batch_size": 1,
            "decoding": "as saved (greedy_batch), TDT head then CTC head",
        },
        "wer": wer,
        "ctc_wer": ctc_wer,
        "clips": {
            clip["file"]: {
                "text": text,
                "ids": tokens,
                "reference": clip["text"],
                "ctc_text": ctc_text,
                "ctc_ids": ctc_tokens,
            }
            for clip, text, tokens, ctc_text, ctc_tokens in zip(
                heldout["clips"], texts, ids, ctc_texts, ctc_ids, strict=False
            )
        },
        "example": {
            "file": "example.wav",
            "text": texts[-1],
            "ids": ids[-1],
            "ctc_text": ctc_texts[-1],
            "ctc_ids": ctc_ids[-1],
        },
    }
    (FIXTURE / "nemo_transcripts.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"NeMo WER on {len(refs)} held-out clips: TDT {wer:.4f}, CTC {ctc_wer:.4f}; "
          f"example: {texts[-1]!r}")  # fmt: skip
    return 0


def _ids(hypothesis, model, head: str) -> list[int]:
    """Token ids: the TDT hypothesis's `y_sequence`; for CTC, `y_sequence` is per frame (the
    argmax, or log-probs of which the argmax is taken): repeats merged and blanks (the last
    id) removed, which is NeMo's greedy CTC decoding."""
    if head == "rnnt":
        return [int(i) for i in hypothesis.y_sequence]
    blank = model.tokenizer.vocab_size
    per_frame = hypothesis.y_sequence
    frames = (per_frame.argmax(dim=-1) if per_frame.dim() == 2 else per_frame).tolist()
    return [t for k, t in enumerate(frames) if t != blank and (k == 0 or frames[k - 1] != t)]


if __name__ == "__main__":
    raise SystemExit(main())
