"""A Canary transcript against NeMo's hypothesis: what the Canary parity tests share.

Importable from any test module (`tests/` is on pytest's `pythonpath`).
"""

from __future__ import annotations

EPS = 1e-9  # NeMo multiplies offset x stride x subsampling, we offset x (stride x subsampling)


def check_transcript(result, expected: dict, lead: float = 0.0, where: object = None) -> None:
    """Ids, text, and the words and segments NeMo parsed from the frame tokens. `lead`:
    NeMo's padding in front of a short input, which NeMo keeps in its times; ours are on the
    input as given and stop at its end (NeMo's frames of a padded input can lie past it)."""

    def at(seconds: float) -> float:
        return min(result.duration, max(0.0, seconds - lead))

    assert [t.id for t in result.tokens] == expected["ids"], where
    assert result.text == expected["text"], where
    words = expected["timestamp"]["word"]
    assert [w.text for w in result.words] == [w["word"] for w in words], where
    for mine, theirs in zip(result.words, words, strict=True):
        assert abs(mine.start - at(theirs["start"])) < EPS, (where, mine, theirs)
        assert abs(mine.end - at(theirs["end"])) < EPS, (where, mine, theirs)
    segments = expected["timestamp"]["segment"]
    if not words:  # no frame tokens: one segment per chunk, as without timestamps
        assert [s.text for s in result.segments] == ([expected["text"]] if expected["text"] else [])
        return
    assert [s.text for s in result.segments] == [s["segment"] for s in segments], where
    for mine, theirs in zip(result.segments, segments, strict=True):
        assert abs(mine.start - at(theirs["start"])) < EPS, (where, mine, theirs)
        assert abs(mine.end - at(theirs["end"])) < EPS, (where, mine, theirs)
        assert " ".join(w.text for w in mine.words) == mine.text
