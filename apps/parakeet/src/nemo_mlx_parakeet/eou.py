"""End-of-utterance markers: the `<EOU>` and `<EOB>` tokens of NVIDIA's end-of-utterance
checkpoints (parakeet_realtime_eou_120m-v1, NeMo's `EncDecRNNTBPEEOUModel`, and its hybrid
RNNT + CTC sibling `EncDecHybridRNNTCTCBPEEOUModel`, whose two heads both emit them).

The model writes `<EOU>` into its token stream where it judges that the speaker finished
an utterance, and `<EOB>` where a backchannel ("uh-huh", "yeah") ended. NeMo keeps them in
the hypothesis and its text; its EOU predictions mark, per encoder frame, whether the
greedy decoder emitted the marker on that frame (`ASREOUModelMixin.
_get_eou_predictions_from_hypotheses`). Here a marker becomes an `EndOfUtterance` event
with that frame, its time, and the text of the utterance it ends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .tokenizer import Tokenizer

Kind = Literal["utterance", "backchannel"]
# NeMo's EOU_STRING and EOB_STRING (collections/asr/data/audio_to_eou_label_lhotse.py)
MARKERS: dict[str, Kind] = {"<EOU>": "utterance", "<EOB>": "backchannel"}


@dataclass(frozen=True)
class EndOfUtterance:
    """The model marked the end of an utterance (`<EOU>`) or of a backchannel (`<EOB>`).

    `frame` is the encoder frame the decoder emitted the marker on (NeMo's), `time` its
    start in seconds from the start of the audio or stream, `text` what was said since
    the previous marker (markers left out)."""

    kind: Kind
    frame: int
    time: float
    text: str


class Markers:
    """A tokenizer's end-of-utterance marker ids (none for other checkpoints)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.kinds = {
            index: MARKERS[piece]
            for index, piece in enumerate(tokenizer.pieces)
            if piece in MARKERS
        }

    def __bool__(self) -> bool:
        return bool(self.kinds)

    def events(
        self,
        ids: Sequence[int],
        frames: Sequence[int],
        frame_seconds: float,
        start: int = 0,
        since: int | None = None,
    ) -> tuple[list[EndOfUtterance], int]:
        """The markers among `ids[since:]` (default: from `start`), in an utterance that
        began at `start` (0, or just after an earlier marker), each with the text since
        the marker before it; and where the utterance after them begins."""
        events = []
        for i in range(start if since is None else since, len(ids)):
            kind = self.kinds.get(ids[i])
            if kind is None:
                continue
            text = self.tokenizer.text([t for t in ids[start:i] if t not in self.kinds]).strip()
            events.append(EndOfUtterance(kind, frames[i], frames[i] * frame_seconds, text))
            start = i + 1
        return events, start

    def frame_predictions(
        self, ids: Sequence[int], frames: Sequence[int], n_frames: int, kind: Kind = "utterance"
    ) -> list[bool]:
        """NeMo's per-frame EOU (or EOB) predictions of a transducer hypothesis: whether a
        marker of `kind` was emitted on each of the `n_frames` encoder frames."""
        marked = {f for t, f in zip(ids, frames, strict=True) if self.kinds.get(t) == kind}
        return [frame in marked for frame in range(n_frames)]

    def ctc_frame_predictions(
        self, alignment: Sequence[int], kind: Kind = "utterance"
    ) -> list[bool]:
        """NeMo's per-frame EOU (or EOB) predictions of a CTC head (a hybrid EOU model's):
        whether the frame's greedy label (`alignment`, before collapsing) is the marker."""
        return [self.kinds.get(label) == kind for label in alignment]
