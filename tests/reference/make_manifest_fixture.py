"""NeMo's `transcribe` on a NeMo manifest, for the manifest tests (tests/test_corpus_apps.py).

Needs the `reference` group. From the repository root:

    python tests/reference/make_manifest_fixture.py
    # on the project machine: /work/main/.venv/bin/python tests/reference/make_manifest_fixture.py

Writes tests/fixtures/demo/manifest.jsonl: twelve rows over the committed held-out clips
(tests/fixtures/demo/clips/, paths relative to the manifest's folder, as NeMo's own
manifests have them), six whole clips and six with an `offset` and a `duration` that cut
inside a clip (at times that are no whole number of 10 ms frames, so the sample rounding
shows). Then restores the bundled demo model with NeMo and calls `transcribe` on the
manifest (its paths made full against the manifest's folder first, as
`transcribe_speech.py` does; NeMo reads it with its lhotse manifest adapter), TDT head as
saved, with `timestamps=True`, at batch size 1 and again at 4, and writes
tests/fixtures/demo/manifest_nemo.json: per row NeMo's text, token ids and word times (at
batch size 1; at 4 too: NeMo's batched TDT decoding gives some rows other word end times
there, which this project's decoding, independent of the batch, does not reproduce), and
the model's SHA-256, versions and this command.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import soundfile as sf
import torch
from nemo.collections.asr.models import ASRModel
from nemo.collections.common.parts.preprocessing.manifest import get_full_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_demo_fixture import provenance  # tests/reference/ is not a package

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "apps" / "parakeet" / "src" / "nemo_mlx_parakeet" / "demo"
FIXTURE = ROOT / "tests" / "fixtures" / "demo"
MANIFEST = FIXTURE / "manifest.jsonl"
COMMAND = "python tests/reference/make_manifest_fixture.py"
# (clip number, offset, duration): cuts inside clips, at odd sample positions
CUTS = [(6, 0.3137, 1.5011), (7, 0.0, 1.20007), (8, 0.75003, 1.8), (9, 1.1, 0.93331),
        (10, 0.51, 2.0), (11, 0.2, 1.0)]  # fmt: skip


def build_manifest() -> list[dict]:
    heldout = json.loads((FIXTURE / "heldout.json").read_text())
    clips = heldout["clips"]
    rows = []
    for clip in clips[:6]:
        duration = sf.info(str(FIXTURE / clip["file"])).duration
        rows.append({"audio_filepath": clip["file"], "duration": duration, "text": clip["text"]})
    for number, offset, duration in CUTS:
        clip = clips[number]
        rows.append({"audio_filepath": clip["file"], "offset": offset, "duration": duration,
                     "text": clip["text"]})  # fmt: skip
    MANIFEST.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def main() -> int:
    torch.manual_seed(0)
    rows = build_manifest()
    model_file = DEMO / "demo.nemo"
    model = ASRModel.restore_from(str(model_file), map_location=torch.device("cpu")).eval()
    # transcribe_speech.py's prepare_audio_data: paths made full against the manifest's folder
    # (get_full_path), written to a manifest that `transcribe` then reads
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "manifest.jsonl"
        full.write_text("".join(
            json.dumps({**r, "audio_filepath": get_full_path(r["audio_filepath"], str(MANIFEST))}) + "\n"
            for r in rows
        ))  # fmt: skip
        hyps = model.transcribe(str(full), batch_size=1, timestamps=True, verbose=False)
        batched = model.transcribe(str(full), batch_size=4, timestamps=True, verbose=False)
    out = []
    for row, hyp, other in zip(rows, hyps, batched, strict=True):
        ids = hyp.y_sequence.tolist() if hasattr(hyp.y_sequence, "tolist") else list(hyp.y_sequence)
        words = [{"word": w["word"], "start": w["start"], "end": w["end"]}
                 for w in hyp.timestamp["word"]]  # fmt: skip
        words_4 = [{"word": w["word"], "start": w["start"], "end": w["end"]}
                   for w in other.timestamp["word"]]  # fmt: skip
        assert other.text == hyp.text, (other.text, hyp.text)
        out.append({"audio_filepath": row["audio_filepath"], "offset": row.get("offset"),
                    "duration": row["duration"], "text": hyp.text, "ids": ids, "words": words,
                    "words_batch_4": words_4})  # fmt: skip
    fixture = {
        **provenance(COMMAND, model_file),
        "transcribe": {
            "audio": "tests/fixtures/demo/manifest.jsonl",
            "batch_size": 1,
            "timestamps": True,
            "decoding": "as saved (TDT head, greedy_batch)",
        },
        "note": "words: batch_size 1; words_batch_4: the same call at batch_size 4, whose TDT "
        "word ends differ for some rows (the other rows of the batch change a last "
        "token's duration); texts are the same at both",
        "rows": out,
    }
    (FIXTURE / "manifest_nemo.json").write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {FIXTURE / 'manifest_nemo.json'}: {len(out)} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
