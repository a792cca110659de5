"""Decoding results: token ids with their encoder frames and log-probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Token:
    """One emitted token.

    `frame` is the encoder frame at which it was emitted (NeMo's `Hypothesis.timestamp`);
    `duration` is the TDT duration the joint predicted with it (None for RNNT);
    `logprob` is its log-probability among the vocabulary and blank (its confidence).
    """

    id: int
    frame: int
    duration: int | None
    logprob: float


@dataclass
class Hypothesis:
    """A decoded utterance: its tokens in order, and the sum of their log-probabilities."""

    tokens: list[Token] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [token.id for token in self.tokens]

    @property
    def frames(self) -> list[int]:
        return [token.frame for token in self.tokens]

    @property
    def durations(self) -> list[int | None]:
        return [token.duration for token in self.tokens]

    @property
    def score(self) -> float:
        return sum(token.logprob for token in self.tokens)
