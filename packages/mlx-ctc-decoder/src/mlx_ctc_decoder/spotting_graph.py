"""The word spotter's context graph: a prefix tree of the words' tokenizations laid out in
CTC's topology (NeMo's `ContextGraphCTC`): each token state loops on its token, and between
two tokens of a word sits a blank state that loops on the blank, so a word is read through
CTC's repeats and blanks. Built state for state as NeMo builds it, so that the spotter walks
the arcs in NeMo's order (a dict keeps insertion order, as NeMo's does)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class SpottingState:
    """One state: its arcs (token id -> state index), and the word that ends here, if any."""

    index: int
    is_end: bool = False
    word: str | None = None
    next: dict[int, int] = field(default_factory=dict)


class SpottingGraph:
    """The context graph of spelled words; `states[0]` is the root."""

    def __init__(self, blank_id: int) -> None:
        self.blank_id = blank_id
        self.states: list[SpottingState] = [SpottingState(0)]

    @classmethod
    def from_words(
        cls, items: Sequence[tuple[str, Sequence[Sequence[int]]]], blank_id: int
    ) -> SpottingGraph:
        """The graph of (word, spellings) items, each spelling a list of token ids (NeMo's
        `add_to_graph(word_items)`; a word may have several spellings, e.g. "gpu" as
        `g p u`); ValueError for an empty spelling or the blank id in one."""
        graph = cls(blank_id)
        for word, spellings in items:
            for tokens in spellings:
                if not tokens:
                    raise ValueError(f"word {word!r} has an empty spelling")
                if blank_id in tokens:
                    raise ValueError(f"a spelling of {word!r} holds the blank id {blank_id}")
                graph._add(word, [int(t) for t in tokens])
        return graph

    def _new(self, is_end: bool = False, word: str | None = None) -> SpottingState:
        state = SpottingState(len(self.states), is_end, word)
        self.states.append(state)
        return state

    def _blank_after(self, state: SpottingState) -> SpottingState:
        """The blank state after `state`, made (looping on the blank) if it is not there."""
        if self.blank_id not in state.next:
            blank = self._new()
            blank.next[self.blank_id] = blank.index
            state.next[self.blank_id] = blank.index
        return self.states[state.next[self.blank_id]]

    def _add(self, word: str, tokens: list[int]) -> None:
        blank = self.blank_id
        current, previous_token = self.states[0], None
        for position, token in enumerate(tokens):
            last = position == len(tokens) - 1
            if token not in current.next:
                node = self._new(last, word if last else None)
                node.next[token] = node.index
                current.next[token] = node.index
                if current.index != 0:
                    self._blank_after(current).next[token] = node.index
            if token == previous_token:
                repeat = self._repeat(current, token, word if last else None, last)
                if repeat is not None:
                    current = repeat
                    continue
            target = self.states[current.next[token]]
            if target.index != current.index:
                current = target
            else:
                current = self.states[self.states[current.next[blank]].next[token]]
            previous_token = token

    def _repeat(
        self, current: SpottingState, token: int, word: str | None, last: bool
    ) -> SpottingState | None:
        """A token equal to the one before: it must follow a blank (CTC merges repeats).
        The state reached through the blank if there is one already (returned), else a new
        one behind the blank state (None: the caller moves through the blank to it)."""
        blank = self.blank_id
        if blank in current.next and token in self.states[current.next[blank]].next:
            return self.states[self.states[current.next[blank]].next[token]]
        had_blank = blank in current.next
        node = self._new(last, word)
        self._blank_after(current).next[token] = node.index
        if had_blank:  # as NeMo: a state behind a new blank state gets no loop on its token
            node.next[token] = node.index
        return None
