"""`TransformerDecoder`: NeMo's Transformer decoder and output head, stepped with a cache."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from .cache import DecoderCache, LayerCache
from .config import DecoderConfig
from .layers import _LN_EPS, Attention, Embedding, FeedForward, activation


class DecoderBlock(nn.Module):
    """Self-attention, cross-attention over the encoder states, feed-forward.

    Pre-LN: each sub-layer normalises its input and adds its output to the residual.
    Post-LN: each sub-layer adds to its input, then normalises. The self-attention keys
    are the sub-layer's (normalised, under pre-LN) inputs, so caching their projections
    gives what NeMo computes from its cached hidden states.
    """

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.pre_ln = config.pre_ln
        self.layer_norm_1 = nn.LayerNorm(d, eps=_LN_EPS)
        self.self_attn = Attention(d, config.num_heads)
        self.layer_norm_2 = nn.LayerNorm(d, eps=_LN_EPS)
        self.cross_attn = Attention(d, config.num_heads)
        self.layer_norm_3 = nn.LayerNorm(d, eps=_LN_EPS)
        self.ffn = FeedForward(d, config.inner_size, config.hidden_act)

    def __call__(
        self,
        x: mx.array,
        cache: LayerCache,
        offset: int,
        self_mask: mx.array,
        memory_mask: mx.array,
    ) -> mx.array:
        attn = self.self_attn
        if self.pre_ln:
            h = self.layer_norm_1(x)
            keys, values = cache.append(attn.heads(attn.key(h)), attn.heads(attn.value(h)), offset)
            x = x + attn.attend(h, keys, values, self_mask)
            h = self.layer_norm_2(x)
            x = x + self.cross_attn.attend(h, cache.memory_keys, cache.memory_values, memory_mask)
            return x + self.ffn(self.layer_norm_3(x))
        keys, values = cache.append(attn.heads(attn.key(x)), attn.heads(attn.value(x)), offset)
        x = self.layer_norm_1(x + attn.attend(x, keys, values, self_mask))
        x = self.layer_norm_2(
            x + self.cross_attn.attend(x, cache.memory_keys, cache.memory_values, memory_mask)
        )
        return self.layer_norm_3(x + self.ffn(x))


class Head(nn.Module):
    """NeMo's `TokenClassifier` MLP: `layers - 1` hidden layers with activation, then logits."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.layers = [nn.Linear(d, d) for _ in range(config.head_layers - 1)]
        self.layers.append(nn.Linear(d, config.num_classes))
        self._act = activation(config.head_activation)

    def __call__(self, x: mx.array) -> mx.array:
        for layer in self.layers[:-1]:
            x = self._act(layer(x))
        return self.layers[-1](x)


class TransformerDecoder(nn.Module):
    """Autoregressive decoder over encoder states; knows nothing of any prompt format.

    `start` runs the prompts (one list of ids per row, any lengths: shorter ones are
    left-padded and masked) and returns the logits for the first generated token;
    `step` feeds one token per row and returns the next logits. Both return raw logits
    (B, num_classes) in float32; searches apply log-softmax where NeMo does.
    """

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        if config.memory_size is not None:
            self.memory_proj = nn.Linear(config.memory_size, config.hidden_size)
        self.embedding = Embedding(
            config.num_classes,
            config.hidden_size,
            config.max_sequence_length,
            config.learn_positional_encodings,
        )
        self.layers = [DecoderBlock(config) for _ in range(config.num_layers)]
        if config.final_layer_norm:
            self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=_LN_EPS)
        self.head = Head(config)

    PREFIX = "transf_decoder."  # its tensors in a converted model's weights

    @classmethod
    def from_nemo(
        cls, nemo_config: Mapping[str, Any], weights: Mapping[str, mx.array]
    ) -> TransformerDecoder:
        """The decoder of a NeMo multitask (Canary) model: its whole config, and the
        `transf_decoder.*` tensors of the model's weights (mlx-seq2seq-decoder's names, as
        nemo-mlx-convert writes them), loaded strictly. The vocabulary and the memory size
        come from the tensors (NeMo rounds the vocabulary up when it builds the model)."""
        prefix = cls.PREFIX
        own = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        classes = own["embedding.token_embedding.weight"].shape[0]
        memory = own["memory_proj.weight"].shape[1] if "memory_proj.weight" in own else None
        config = DecoderConfig.from_nemo(nemo_config, memory_size=memory, num_classes=classes)
        decoder = cls(config)
        decoder.load_weights(list(own.items()), strict=True)
        return decoder

    def start(
        self, memory: mx.array, memory_lengths: mx.array, prompts: Sequence[Sequence[int]]
    ) -> tuple[mx.array, DecoderCache]:
        """memory (B, S, memory_size) encoder states; prompts: B lists of token ids."""
        if len(prompts) != memory.shape[0]:
            raise ValueError(f"{len(prompts)} prompts for a batch of {memory.shape[0]}")
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        if "memory_proj" in self:
            memory = self.memory_proj(memory)
        dtype = self.embedding.token_embedding.weight.dtype
        memory = memory.astype(dtype)
        frames = mx.arange(memory.shape[1])[None, :] < memory_lengths[:, None]
        memory_mask = frames[:, None, None, :]
        layers = [LayerCache(*block.cross_attn.project_memory(memory)) for block in self.layers]

        width = max(len(p) for p in prompts)
        pads = [width - len(p) for p in prompts]
        ids = mx.array(
            [[0] * pad + list(p) for pad, p in zip(pads, prompts, strict=True)], dtype=mx.int32
        )
        pad_count = mx.array(pads, dtype=mx.int32)[:, None]
        slots = mx.arange(width, dtype=mx.int32)[None, :]
        slot_valid = slots >= pad_count
        cache = DecoderCache(
            layers=layers,
            memory_mask=memory_mask,
            slot_valid=slot_valid,
            positions=mx.array([len(p) for p in prompts], dtype=mx.int32),
        )
        # Causal over slots, real keys only; a padding slot sees itself, so no row is empty.
        causal = slots <= slots.T  # (L query, L key)
        eye = slots == slots.T
        self_mask = ((causal[None] & slot_valid[:, None, :]) | eye[None])[:, None]
        positions = mx.maximum(slots - pad_count, 0)
        return self._run(ids, positions, cache, self_mask), cache

    def step(self, tokens: mx.array, cache: DecoderCache) -> mx.array:
        """tokens (B,) appended at each row's next position; the following logits (B, V)."""
        cache.slot_valid = mx.concatenate(
            [cache.slot_valid, mx.ones((tokens.shape[0], 1), dtype=mx.bool_)], axis=1
        )
        self_mask = cache.slot_valid[:, None, None, :]
        positions = cache.positions[:, None]
        cache.positions = cache.positions + 1
        return self._run(tokens[:, None].astype(mx.int32), positions, cache, self_mask)

    def _run(
        self, ids: mx.array, positions: mx.array, cache: DecoderCache, self_mask: mx.array
    ) -> mx.array:
        x = self.embedding(ids, positions)
        offset = cache.length
        for block, layer_cache in zip(self.layers, cache.layers, strict=True):
            x = block(x, layer_cache, offset, self_mask, cache.memory_mask)
        cache.length = offset + ids.shape[1]
        x = x[:, -1]
        if "final_layer_norm" in self:
            x = self.final_layer_norm(x)
        return self.head(x).astype(mx.float32)
