"""NeMo's phrase-boosting tree (`GPUBoostingTreeModel`) as a batched acceptor on MLX.

Phrases become token sequences through the model's tokenizer (any `str -> list[int]`),
then a trie with Aho-Corasick failure links (NeMo's `ContextGraph`, from Icefall), then the
acceptor layout `acceptor.py` describes:

- a phrase's i-th token (from 0) is worth `context_score` (or the phrase's own score), and
  for i > 0 `context_score * depth_scaling + log(i + 1)`; a node shared by several phrases
  keeps the larger of its score and the later phrase's plain `context_score`;
- the root (state 0) reads every label: a phrase's first token goes into the tree, any
  other label stays at the root, scored `unk_score`;
- a node's back-off is its failure link, weighted so that leaving a phrase half-way takes
  its bonus back (the failure node's accumulated score less the node's); a phrase's last
  node keeps its bonus (back-off weight 0) and has final weight `final_eos_score`;
- states are numbered level by level, within a level by (parent's node id, token).

`score_per_phrase`, when not 0, replaces `context_score` for each phrase by
`round(score_per_phrase / len(phrase), 2)` (characters), as NeMo does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mlx.core as mx
import numpy as np

from .acceptor import START_STATE, AcceptorArrays, AcceptorBuilder, SuffixTreeAcceptor


@dataclass
class BoostingTreeConfig:
    """NeMo's `BoostingTreeModelConfig` fields that shape the tree (same names and
    defaults). Give phrases as `key_phrases_list` or `key_phrases_file` (one per line)."""

    key_phrases_list: list[str] | None = None
    key_phrases_file: str | None = None
    context_score: float = 1.0
    depth_scaling: float = 2.0  # NeMo: 2.0 for CTC, RNNT and TDT, 1.0 for Canary
    unk_score: float = 0.0
    final_eos_score: float = 1.0
    score_per_phrase: float = 0.0
    uniform_weights: bool = False

    def phrases(self) -> list[str]:
        """The phrases, from the list or the file (stripped lines), not both."""
        if self.key_phrases_file is not None and self.key_phrases_list:
            raise ValueError("give key phrases as a list or as a file, not both")
        if self.key_phrases_file:
            lines = Path(self.key_phrases_file).read_text(encoding="utf-8").splitlines()
            return [line.strip() for line in lines]
        if self.key_phrases_list:
            return list(self.key_phrases_list)
        raise ValueError("no key phrases given")


@dataclass(eq=False)
class _Node:
    """A trie node (NeMo's `ContextState`, the fields the tree uses)."""

    id: int
    token_score: float
    node_score: float
    is_end: bool
    level: int
    next: dict[int, _Node] = field(default_factory=dict)
    fail: _Node | None = None


class BoostingTree(SuffixTreeAcceptor):
    """Phrase boosting: `advance` gives each label's bonus after each state's matched
    phrase prefix, and the state it leads to. Starts at the root (no separate `<s>`)."""

    @classmethod
    def from_config(
        cls, config: BoostingTreeConfig, tokenize: Callable[[str], list[int]], vocab_size: int
    ) -> BoostingTree:
        """The tree of `config`'s phrases, tokenized with `tokenize` (the ASR model's
        tokenizer: NeMo calls its `text_to_ids`); `vocab_size` tokens (blank excluded)."""
        phrases = config.phrases()
        if any(not phrase for phrase in phrases):
            raise ValueError("empty key phrase (NeMo divides by the phrase's length)")
        token_ids = {phrase: list(tokenize(phrase)) for phrase in phrases}  # repeats once
        scores = [round(config.score_per_phrase / len(phrase), 2) for phrase in token_ids]
        root, _ = build_context_graph(
            list(token_ids.values()),
            scores,
            context_score=config.context_score,
            depth_scaling=config.depth_scaling,
            uniform_weights=config.uniform_weights,
        )
        arrays, max_order = build_tree_arrays(root, vocab_size, config)
        return cls(arrays, vocab_size=vocab_size, max_order=max_order, bos_state=START_STATE)

    @classmethod
    def from_phrases(
        cls,
        phrases: Sequence[str],
        tokenize: Callable[[str], list[int]],
        vocab_size: int,
        **settings: float | bool,
    ) -> BoostingTree:
        """`from_config` with `BoostingTreeConfig(key_phrases_list=phrases, **settings)`."""
        config = BoostingTreeConfig(key_phrases_list=list(phrases), **settings)  # type: ignore[arg-type]
        return cls.from_config(config, tokenize, vocab_size)

    def _eos_scores(self, scores: mx.array, states: mx.array) -> mx.array:
        """NeMo: the best bonus on offer (at least 0) plus the final weight, so that an
        attention decoder is not kept from ending a sentence by a phrase it could start."""
        return mx.maximum(scores.max(axis=1), 0.0) + self.get_final(states)


def build_context_graph(
    token_ids: list[list[int]],
    scores: list[float],
    *,
    context_score: float,
    depth_scaling: float,
    uniform_weights: bool = False,
) -> tuple[_Node, int]:
    """The trie of the phrases' tokens with failure links (NeMo's `ContextGraph.build`);
    the root and the number of nodes besides it."""
    root = _Node(id=0, token_score=0.0, node_score=0.0, is_end=False, level=0)
    root.fail = root
    count = 0
    for tokens, score in zip(token_ids, scores, strict=True):
        phrase_score = context_score if score == 0.0 else score
        node = root
        for i, token in enumerate(tokens):
            last = i == len(tokens) - 1
            child = node.next.get(token)
            if child is None:
                token_score = phrase_score
                if i > 0 and not uniform_weights:  # later tokens are worth more
                    token_score = phrase_score * depth_scaling + np.log(i + 1)
                count += 1
                child = _Node(
                    id=count,
                    token_score=token_score,
                    node_score=node.node_score + token_score,
                    is_end=last,
                    level=i + 1,
                )
                node.next[token] = child
            else:  # shared with an earlier phrase: the larger score
                child.token_score = max(phrase_score, child.token_score)
                child.node_score = node.node_score + child.token_score
                child.is_end = last or child.is_end
            node = child
    _link_failures(root)
    return root, count


def _link_failures(root: _Node) -> None:
    """Aho-Corasick failure links, breadth first: a node fails to the longest proper
    suffix of its path that is also a path from the root."""
    queue = deque(root.next.values())
    for node in queue:
        node.fail = root
    while queue:
        parent = queue.popleft()
        for token, node in parent.next.items():
            fail = parent.fail
            while token not in fail.next and fail is not root:
                fail = fail.fail
            node.fail = fail.next.get(token, root)
            queue.append(node)


def _branches(root: _Node) -> list[list[tuple[int, _Node, _Node]]]:
    """(token, parent, node) of every trie edge, by level (breadth first)."""
    levels: list[list[tuple[int, _Node, _Node]]] = []
    queue = deque([root])
    while queue:
        parent = queue.popleft()
        for token, node in parent.next.items():
            while len(levels) < node.level:
                levels.append([])
            levels[node.level - 1].append((token, parent, node))
            queue.append(node)
    return levels


def build_tree_arrays(
    root: _Node, vocab_size: int, config: BoostingTreeConfig
) -> tuple[AcceptorArrays, int]:
    """The acceptor of a context graph (module docstring); its max order."""
    levels = _branches(root)
    if not levels:
        raise ValueError("the key phrases give no tokens")
    nodes = sum(len(level) for level in levels)
    tree = AcceptorBuilder(1 + nodes, vocab_size + nodes, final=0.0)
    tree.add_state(order=1, backoff_to=START_STATE, backoff_weight=0.0)  # the root
    tree.arcs_end[START_STATE] = tree.num_arcs = vocab_size  # its arcs are at their labels
    state_of = {root.id: START_STATE}
    for depth, level in enumerate(levels):
        for token, parent, node in sorted(level, key=lambda b: (b[1].id, b[0])):
            if not 0 <= token < vocab_size:
                raise ValueError(f"key phrase token {token} is not in [0, {vocab_size})")
            source = state_of[parent.id]
            # a phrase's end keeps its bonus; NeMo gives the first level that rule even
            # with uniform weights
            keeps = node.is_end and (depth == 0 or not config.uniform_weights)
            state = tree.add_state(
                order=int(tree.order[source]) + 1,
                backoff_to=state_of[node.fail.id],
                backoff_weight=0.0 if keeps else node.fail.node_score - node.node_score,
            )
            tree.final[state] = config.final_eos_score if node.is_end else 0.0
            weight = node.token_score
            if depth > 0 and config.uniform_weights and node.is_end:
                weight = weight + node.node_score
            if depth == 0:
                tree.set_arc(token, source, state, token, weight)
            else:
                tree.extend_range(source, tree.add_arc(source, state, token, weight))
            state_of[node.id] = state
    first_tokens = {token for token, _, _ in levels[0]}
    for label in range(vocab_size):
        if label not in first_tokens:
            tree.set_arc(label, START_STATE, START_STATE, label, config.unk_score)
    return tree.arrays(), len(levels) + 1
