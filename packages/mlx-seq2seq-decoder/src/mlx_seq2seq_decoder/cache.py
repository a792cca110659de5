"""Per-layer key/value caches: each decoding step projects only the new token."""

from __future__ import annotations

from dataclasses import dataclass, field

import mlx.core as mx

_GROW = 64  # slots added at a time: a step writes in place, growth is amortised


@dataclass
class LayerCache:
    """Self-attention keys/values (B, H, capacity, D/H) and the encoder's (B, H, S, D/H)."""

    memory_keys: mx.array
    memory_values: mx.array
    keys: mx.array | None = None
    values: mx.array | None = None

    def append(self, keys: mx.array, values: mx.array, offset: int) -> tuple[mx.array, mx.array]:
        """Write (B, H, n, D/H) at slots [offset, offset + n); the filled (..., :offset + n, :)."""
        end = offset + keys.shape[2]
        if self.keys is None or end > self.keys.shape[2]:
            batch, heads, _, size = keys.shape
            capacity = (end + _GROW - 1) // _GROW * _GROW
            grown_k = mx.zeros((batch, heads, capacity, size), dtype=keys.dtype)
            grown_v = mx.zeros((batch, heads, capacity, size), dtype=values.dtype)
            if self.keys is not None:
                grown_k[:, :, :offset] = self.keys[:, :, :offset]
                grown_v[:, :, :offset] = self.values[:, :, :offset]
            self.keys, self.values = grown_k, grown_v
        self.keys[:, :, offset:end] = keys
        self.values[:, :, offset:end] = values
        return self.keys[:, :, :end], self.values[:, :, :end]

    def select(self, rows: mx.array, memory: bool = True) -> None:
        """Keep batch rows `rows` (beam search reordering).

        `memory=False` leaves the encoder's keys and values alone: right when every row
        takes a row of the same utterance, as beams of one item do.
        """
        if memory:
            self.memory_keys = self.memory_keys[rows]
            self.memory_values = self.memory_values[rows]
        if self.keys is not None:
            self.keys = self.keys[rows]
            self.values = self.values[rows]


@dataclass
class DecoderCache:
    """Everything a step needs besides the new tokens.

    `slot_valid` (B, slots) is False for the left padding of shorter prompts; `positions`
    (B,) is each row's next position (its count of real tokens so far).
    """

    layers: list[LayerCache]
    memory_mask: mx.array  # (B, 1, 1, S) bool: valid encoder frames
    slot_valid: mx.array
    positions: mx.array
    length: int = 0
    extra: dict = field(default_factory=dict)

    def select(self, rows: mx.array, memory: bool = True) -> None:
        for layer in self.layers:
            layer.select(rows, memory)
        if memory:
            self.memory_mask = self.memory_mask[rows]
        self.slot_valid = self.slot_valid[rows]
        self.positions = self.positions[rows]
