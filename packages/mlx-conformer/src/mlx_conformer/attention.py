"""Relative-position multi-head attention (Transformer-XL style), full and local.

Both fold NeMo's positional term (`matrix_bd`) into an additive bias of
`mx.fast.scaled_dot_product_attention`, which computes the content term itself:
softmax((q + u) k^T / sqrt(d) + (q + v) p^T / sqrt(d)) as NeMo's `RelPositionMultiHeadAttention`.
Local attention (`rel_pos_local_attn`) computes the same scores for keys within
[i - left, i + right] block by block, never building a T x T matrix. Full attention also
runs NeMo's chunked attention and cache-aware streaming: an explicit key mask, and keys
that begin with a stream's cached frames (`cache=`, a `LayerCache`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn

from . import cpu_attention, fastmath
from .cache import LayerCache
from .context import context_mask, longformer_position_map
from .fastmath import mask_value
from .packing import PackedRows
from .positional import SymmetricPositions


class RelPositionAttention(nn.Module):
    """NeMo's `RelPositionMultiHeadAttention` / `...Longformer` parameters and maths."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        use_bias: bool = True,
        context: tuple[int, int] = (-1, -1),
        local: bool = False,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.scale = 1.0 / math.sqrt(self.d_head)
        self.set_context(context, local)
        # Values per score tensor of full attention (64 MB in float32): see `_full`.
        self.score_budget = 1 << 24
        self.linear_q = nn.Linear(d_model, d_model, bias=use_bias)
        self.linear_k = nn.Linear(d_model, d_model, bias=use_bias)
        self.linear_v = nn.Linear(d_model, d_model, bias=use_bias)
        self.linear_out = nn.Linear(d_model, d_model, bias=use_bias)
        self.linear_pos = nn.Linear(d_model, d_model, bias=False)
        self.pos_bias_u = mx.zeros((n_heads, self.d_head))
        self.pos_bias_v = mx.zeros((n_heads, self.d_head))

    def set_context(self, context: tuple[int, int], local: bool) -> None:
        """(left, right) context in frames (-1: unlimited, full attention only); local or full."""
        self.context = tuple(context)
        self.local = local
        self._position_map = longformer_position_map(*context) if local else None

    def __call__(
        self,
        x: mx.array,
        pos_emb: mx.array | SymmetricPositions,
        lengths: mx.array | None = None,
        mask: mx.array | None = None,
        cache: LayerCache | None = None,
        packed: PackedRows | None = None,
    ) -> mx.array:
        """x (B, T, D) -> (B, T, D).

        pos_emb: for full attention the positions K-1 ... -(K-1) of the K keys
        (`SymmetricPositions`); for local attention the (left + right + 1, D) table of
        positions left ... -right. Keys are the T frames, after the C cached ones of a
        stream's `cache` (K = C + T; query i sits at position C + i). `lengths` (B,) mask
        padded frames under the layer's own (left, right) context; an explicit `mask`
        (B or 1, T, K) of keys to keep replaces both (chunked attention, streaming): a query
        that may see no key then outputs zeros before `linear_out`, as in NeMo.
        `packed`: x is (1, N, D) packed rows (`packing`) and pos_emb the longest item's;
        full attention through the native CPU pass only.
        """
        batch, time, _ = x.shape
        if self.local and packed is not None:
            raise ValueError("packed rows take full attention only (see `Conformer._packing`)")
        q, k, v = self.linear_q(x), self.linear_k(x), self.linear_v(x)
        if cache is None and not self.local:
            out = self._native_rows(q, k, v, pos_emb, lengths, mask, packed)
            if out is not None:
                return self.linear_out(
                    out if mask is None else out * mx.any(mask, axis=-1)[..., None]
                )
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        if cache is not None:
            k, v = cache.update_and_fetch(k, v)
        q_u = q + self.pos_bias_u[None, :, None, :]
        q_v = q + self.pos_bias_v[None, :, None, :]
        if not self.local:
            out = self._full(
                q_u, q_v, k, v, self._positions_of(pos_emb, time, cache), lengths, mask
            )
        else:
            p = self._heads(self.linear_pos(pos_emb)[None])[0]  # (H, band, d_head)
            out = self._local(q_u, q_v, k, v, p, lengths)
        if mask is not None:
            out = out * mx.any(mask, axis=-1)[:, None, :, None]
        return self.linear_out(out.transpose(0, 2, 1, 3).reshape(batch, time, -1))

    def _native_rows(
        self,
        q: mx.array,
        k: mx.array,
        v: mx.array,
        pos_emb: SymmetricPositions,
        lengths: mx.array | None,
        mask: mx.array | None,
        packed: PackedRows | None,
    ) -> mx.array | None:
        """Full attention of an offline input in one native CPU pass on the projections as
        they come (`cpu_attention.full_attention_rows`: no head transposes), (B, T, D); None
        where it does not apply (not the CPU or float32, fewer than `cpu_attention.MIN_KEYS`
        frames, inside `mx.compile`), except for packed rows, which go this way only."""
        time = q.shape[1] if packed is None else packed.longest
        if packed is None and not cpu_attention.usable(q, k, v, self.pos_bias_u, keys=time):
            return None
        out = cpu_attention.full_attention_rows(
            q, k, v, self.pos_bias_u, self.pos_bias_v,
            self._per_head(self._ascending_positions(pos_emb)),
            self.scale,
            mask if mask is not None else context_mask("regular", self.context, time),
            lengths if mask is None else None,
            packed,
        )  # fmt: skip
        if out is None and packed is not None:
            raise RuntimeError("packed rows need the native CPU full attention")
        return out

    def _per_head(self, positions: mx.array) -> mx.array:
        """(P, D) projected positions, heads side by side, as (H, P, d_head) rows."""
        return mx.contiguous(positions.reshape(-1, self.n_heads, self.d_head).transpose(1, 0, 2))

    def _positions_of(
        self, pos_emb: SymmetricPositions, time: int, cache: LayerCache | None
    ) -> mx.array:
        """(K + T - 1, D): projected positions -(T-1) ... K-1, those T queries and K keys
        use (projected once per stream and chunk shape when streaming)."""
        if cache is None:
            return self._ascending_positions(pos_emb)
        start = pos_emb.length - time  # the table holds -(K-1) ... K-1
        key = (pos_emb.length, time, pos_emb.sin.dtype)
        return cache.positions(key, lambda: self._ascending_positions(pos_emb)[start:])

    def _heads(self, x: mx.array) -> mx.array:
        batch, time, _ = x.shape
        return x.reshape(batch, time, self.n_heads, self.d_head).transpose(0, 2, 1, 3)

    def _ascending_positions(self, pos_emb: SymmetricPositions) -> mx.array:
        """(2T - 1, D) projected positions -(T-1) ... T-1, heads side by side in D.

        One (T, D / 2) x (D / 2, D) product per half, not one per head: a single BLAS call
        of all heads' columns is ~3x faster on the CPU than eight with a broadcast input."""
        weight = self.linear_pos.get("weight")
        if weight is None or "scales" in self.linear_pos:  # quantised: no float weight to split
            return self.linear_pos(pos_emb.ascending_table())
        odd = pos_emb.sin @ self._weight_columns(weight, 0)  # (T, D), positions >= 0
        even = pos_emb.cos @ self._weight_columns(weight, 1)
        return mx.concatenate([(even - odd)[:0:-1], even + odd])

    @staticmethod
    def _weight_columns(weight: mx.array, first: int) -> mx.array:
        """(D / 2, D): every other input column of `weight`, transposed.

        Copied explicitly: given the strided view, the CPU matmul copies it itself, ~10x
        slower (~5 ms per layer at d_model 1024, most of what the split saves).
        """
        return mx.contiguous(weight[:, first::2]).T

    def _full(
        self,
        q_u: mx.array,
        q_v: mx.array,
        k: mx.array,
        v: mx.array,
        ascending: mx.array,
        lengths: mx.array | None,
        mask: mx.array | None,
        block: int = 64,
    ) -> mx.array:
        """Full attention; the positional scores are computed only where they are used.

        NeMo multiplies every query with all 2K - 1 positions and shifts (`rel_shift`), so
        that score(i, j) = (q_v[i] . p[i - j]) (positions relative to the last T keys);
        half of that product is thrown away. Here each block of `block` queries meets only
        the K + block - 1 positions its rows need. With the keys taken in reverse order
        (j' = K - 1 - j), those scores sit at column row + j' of each block's product: a
        strided view, no copy. Attention does not depend on the order of the keys; masks
        are built in the same reversed order.

        Queries go in groups of rows sized so that a (batch, heads, rows, K) score tensor
        holds about `score_budget` values: memory grows linearly with T, not quadratically.
        On the CPU in float32, from `cpu_attention.MIN_KEYS` keys on, the same scores are
        computed block by block in one native pass on every core (`cpu_attention`): here for
        a stream's chunks (keys after its cache), offline inputs going there before their
        heads are split (`_native_rows`).
        """
        batch, heads, time, _ = q_u.shape
        keys = k.shape[2]
        if cpu_attention.usable(q_u, q_v, k, v, ascending, keys=keys):
            out = cpu_attention.full_attention(
                q_u, q_v, k, v, self._per_head(ascending), self.scale,
                mask if mask is not None else context_mask("regular", self.context, time),
                lengths if mask is None else None,
            )  # fmt: skip
            if out is not None:  # None: inside mx.compile
                return out
        block = max(1, min(block, time))  # a stream's short chunk: one block, no padded rows
        blocks = -(-time // block)
        padded = blocks * block
        # Positions -(T-1) ... K-1 (`ascending`), zero rows appended for the last block.
        # per head, (H, K + padded - 1, d_head): one copy for all groups
        ascending = self._per_head(mx.pad(ascending, [(0, padded - time), (0, 0)]))
        q_u = mx.pad(q_u, [(0, 0), (0, 0), (0, padded - time), (0, 0)])
        q_v = mx.pad(q_v * self.scale, [(0, 0), (0, 0), (0, padded - time), (0, 0)])
        # Copies: cuDNN (MLX CUDA SDPA) refuses negative strides.
        k, v = mx.contiguous(k[:, :, ::-1]), mx.contiguous(v[:, :, ::-1])
        if mask is not None:  # (B or 1, T, K) -> (B or 1, 1, padded, K), keys reversed
            keep = mx.pad(mask[..., ::-1], [(0, 0), (0, padded - time), (0, 0)])[:, None]
        else:
            keep = context_mask("regular", self.context, time)
            if keep is not None:
                keep = mx.pad(keep[:, ::-1], [(0, padded - time), (0, 0)])
        valid = None
        if lengths is not None and mask is None:
            valid = mx.arange(padded)[None, :] < lengths[:, None]
        group = max(1, self.score_budget // (batch * heads * max(keys, 1) * block)) * block

        def rows(first: int, last: int, after: mx.array | None) -> mx.array:
            queries, positional = _after([q_u[:, :, first:last], q_v[:, :, first:last]], after)
            bias = self._positional_rows(positional, ascending, first, block, keys)
            rows_keep = None if keep is None else keep[..., first:last, :]
            if valid is not None:
                pairs = valid[:, None, first:last, None] & valid[:, None, None, :time][..., ::-1]
                rows_keep = pairs if rows_keep is None else pairs & rows_keep
            return fastmath.attention(queries, k, v, self.scale, bias, rows_keep)

        return _in_groups(padded, group, rows)[:, :, :time]

    @staticmethod
    def _positional_rows(
        q_v: mx.array, ascending: mx.array, first: int, block: int, time: int
    ) -> mx.array:
        """(B, H, rows / block, block, K) positional scores of query rows [first, first + rows)
        in blocks, keys reversed (`time` is K here): a strided view of the blocks' product,
        which `fastmath.attention` adds without copying it into rows first."""
        batch, heads, rows, d_head = q_v.shape
        blocks = rows // block
        width = time + block - 1
        needed = mx.contiguous(ascending[:, first : first + rows + time - 1])
        windows = mx.as_strided(
            needed,
            (heads, blocks, width, d_head),
            ((rows + time - 1) * d_head, block * d_head, d_head, 1),
        )
        scores = q_v.reshape(batch, heads, blocks, block, d_head) @ windows.swapaxes(-1, -2)
        return mx.as_strided(
            scores,
            (batch, heads, blocks, block, time),
            (heads * blocks * block * width, blocks * block * width, block * width, width + 1, 1),
        )

    def _local(
        self,
        q_u: mx.array,
        q_v: mx.array,
        k: mx.array,
        v: mx.array,
        positions: mx.array,
        lengths: mx.array | None,
    ) -> mx.array:
        """Sliding-window attention in query blocks of `block` frames.

        Block b's queries [bC, bC + C) see keys [bC - left, bC + C + right); the positional
        score of query i and key j, (q_v @ positions^T)[i, j - i + left] (`matrix_bd`, with
        `positions` the (H, band, d_head) projected positions left ... -right), is added to
        its content score. Blocks go in groups whose (batch, heads, blocks, C, keys) scores
        hold about `score_budget` values, each group run once the previous one is done, so
        that memory stays bounded however long the input (the windowed keys, values and scores
        of all blocks at once, and `matrix_bd`, take many times the input's size).
        """
        left, right = self.context
        batch, heads, time, _ = q_u.shape
        block = min(64, time)
        blocks = -(-time // block)
        padded = blocks * block
        width = block + left + right  # keys per block

        def pad_time(a: mx.array, before: int, after: int) -> mx.array:
            return mx.pad(a, [(0, 0), (0, 0), (before, after), (0, 0)])

        q_u = pad_time(q_u, 0, padded - time)
        q_v = pad_time(q_v, 0, padded - time)
        k = pad_time(k, left, padded - time + right)
        v = pad_time(v, left, padded - time + right)
        group = max(1, self.score_budget // (batch * heads * block * width))

        def blocks_of(first: int, last: int, after: mx.array | None) -> mx.array:
            group_q_u, group_q_v = _after([q_u, q_v], after)
            return self._local_blocks(
                group_q_u, group_q_v, k, v, positions, lengths, first, last, block, time
            )

        return _in_groups(blocks, group, blocks_of)[:, :, :time]

    def _local_blocks(
        self,
        q_u: mx.array,
        q_v: mx.array,
        k: mx.array,
        v: mx.array,
        positions: mx.array,
        lengths: mx.array | None,
        first: int,
        last: int,
        block: int,
        time: int,
    ) -> mx.array:
        """Query blocks [first, last) of `_local`: (B, H, (last - first) * C, d_head).

        q_u and q_v are padded to whole blocks, k and v by `left` frames in front and
        `right` behind as well."""
        left, right = self.context
        batch, heads, _, d_head = q_u.shape
        blocks = last - first
        width = block + left + right
        band = left + right + 1  # positional columns
        rows = slice(first * block, last * block)
        q_blocks = q_u[:, :, rows].reshape(batch * heads * blocks, 1, block, d_head)
        window_shape = (batch, heads, blocks, width, d_head)

        def windows(a: mx.array) -> mx.array:
            a = mx.contiguous(a[:, :, first * block : last * block + left + right])
            keys = a.shape[2]
            strides = (heads * keys * d_head, keys * d_head, block * d_head, d_head, 1)
            return mx.as_strided(a, window_shape, strides).reshape(
                batch * heads * blocks, 1, width, d_head
            )

        # Skew (C, band) positional rows into (C, width) key columns: row r moves r steps right.
        matrix_bd = q_v[:, :, rows] @ positions.swapaxes(-1, -2)  # (B, H, rows, band)
        if self._position_map is not None:
            matrix_bd = matrix_bd @ self._position_map.astype(matrix_bd.dtype)
        bd = matrix_bd.reshape(batch, heads, blocks, block, band)
        bd = mx.pad(bd, [(0, 0), (0, 0), (0, 0), (0, 0), (0, block)])
        row = band + block
        skewed = mx.as_strided(
            bd,
            shape=(batch, heads, blocks, block, width),
            strides=(heads * blocks * block * row, blocks * block * row, block * row, row - 1, 1),
        )
        query = mx.arange(block)[:, None]
        key = mx.arange(width)[None, :]
        in_band = (key - query >= 0) & (key - query < band)  # (C, width)
        key_pos = (
            mx.arange(first, last)[:, None] * block + mx.arange(width)[None, :] - left
        )  # (blocks, width)
        limit = time if lengths is None else lengths[:, None, None]
        key_ok = (key_pos >= 0) & (key_pos < limit)  # (blocks, width) or (B, blocks, width)
        keep = in_band[None, None] & key_ok.reshape(-1, blocks, 1, width)[:, None]
        bias = mx.where(keep, skewed * self.scale, mask_value(skewed.dtype))
        bias = bias.reshape(batch * heads * blocks, 1, block, width)
        out = fastmath.attention(q_blocks, windows(k), windows(v), self.scale, bias)
        return out.reshape(batch, heads, blocks * block, d_head)


def _in_groups(
    total: int, group: int, run: Callable[[int, int, mx.array | None], mx.array]
) -> mx.array:
    """`run(first, last, after)` over [0, total) in groups of `group`, concatenated along time.

    Each group's inputs depend on the previous group's output (`after`, through
    `mx.depends`): otherwise MLX may build every group's scores before the first softmax,
    and the grouping would bound no memory. No `mx.eval` here, so the forward compiles."""
    outputs: list[mx.array] = []
    for first in range(0, total, group):
        outputs.append(run(first, min(total, first + group), outputs[-1] if outputs else None))
    return outputs[0] if len(outputs) == 1 else mx.concatenate(outputs, axis=2)


def _after(arrays: list[mx.array], after: mx.array | None) -> list[mx.array]:
    """`arrays`, computed only once `after` is (the previous group's output): bounded memory."""
    return arrays if after is None else mx.depends(arrays, [after])
