"""DER with NeMo's own scorer (`nemo.collections.asr.metrics.der.score_labels_from_rttm_labels`,
its Python port of NIST md-eval-22), for the diarization test set.

Shared by `tests/reference/make_demo_sortformer_fixture.py` (NeMo's output) and
`tests/test_diarization_testset.py` (ours), so that both are scored by one scorer, NeMo's, with
the same settings; nothing here computes an error itself. Needs NeMo (the `reference` group).
"""

from __future__ import annotations

from pathlib import Path

# (name, collar half-width in seconds, score only single-speaker regions): NeMo's
# `evaluate_der` modes "full" (DIHARD: every frame, overlaps scored) and "forgiving"
SETTINGS = {"full": (0.0, False), "forgiving": (0.25, True)}


def rttm_labels(path: Path) -> list[str]:
    """The "start end speaker" labels of an RTTM file (NeMo's `rttm_to_labels` form)."""
    out = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            out.append(f"{start:.3f} {start + duration:.3f} {fields[7]}")
    return out


def score(
    references: dict[str, list[str]],
    hypotheses: dict[str, list[str]],
    durations: dict[str, float],
    setting: str,
) -> dict[str, float]:
    """NeMo's DER, confusion, false alarm and miss over all recordings (each scored on
    [0, duration]); every recording must have a hypothesis, even an empty one."""
    from nemo.collections.asr.metrics.der import score_labels_from_rttm_labels

    collar, ignore_overlap = SETTINGS[setting]
    names = sorted(references)
    result = score_labels_from_rttm_labels(
        [(n, references[n]) for n in names],
        [(n, hypotheses[n]) for n in names],
        uem_segments_list=[(n, [[0.0, durations[n]]]) for n in names],
        collar=collar,
        ignore_overlap=ignore_overlap,
        verbose=False,
    )
    assert result is not None, "NeMo's scorer refused the labels"
    der, confusion, false_alarm, miss = result[2]
    return {"der": der, "confusion": confusion, "false_alarm": false_alarm, "miss": miss}


def speaker_map(reference: list[str], hypothesis: list[str], duration: float) -> dict[str, str]:
    """NeMo's optimal one-to-one map of one recording's true speakers to hypothesis speakers
    (the map its DER uses, "full" mode)."""
    from nemo.collections.asr.metrics.der import score_labels_from_rttm_labels

    result = score_labels_from_rttm_labels(
        [("x", reference)], [("x", hypothesis)], uem_segments_list=[("x", [[0.0, duration]])],
        collar=0.0, ignore_overlap=False, verbose=False,
    )  # fmt: skip
    assert result is not None, "NeMo's scorer refused the labels"
    return dict(result[1].get("x", {}))


def one_speaker(references: dict[str, list[str]], durations: dict[str, float]) -> dict:
    """Two trivial answers: one speaker over the whole recording, and one speaker over the
    true speech (a perfect voice detector that never tells speakers apart)."""
    whole = {n: [f"0.000 {durations[n]:.3f} speaker_0"] for n in references}
    speech = {n: [" ".join([*r.split()[:2], "speaker_0"]) for r in refs]
              for n, refs in references.items()}  # fmt: skip
    return {"whole_recording": whole, "true_speech": speech}
