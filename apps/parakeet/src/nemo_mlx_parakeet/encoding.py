"""A batch of pieces through the front end and the encoder, in one of two ways that give the
decoders the same (B, T', D) encoder output and lengths:

- padded: the pieces zero-padded into one batch, one encoder call. The default everywhere:
  a GPU wants one launch to fill the device, and on the CPU, since mlx-conformer's native
  kernels spread each call's elementwise work over every core, a batch of length-sorted
  pieces beats one piece at a time (32 clips of 2-20 s, batches of 8, idle, 2026-12-04:
  demo model 0.81 against 1.03 s, the 0.6b geometry 32.2 against 41.1 s).
- each: one piece at a time, unpadded, and the outputs stacked (zeros past each length,
  which the decoders never read): each piece's encoder output is then exactly what it is
  when the piece runs alone (`encode_each = True`). It had been the CPU's default, when MLX
  ran that elementwise work on one thread and padding only added arithmetic.
"""

from __future__ import annotations

import mlx.core as mx

from mlx_audio_frontend import LogMel
from mlx_conformer import Conformer

from .batching import Piece, batch_features


def encode_padded(
    frontend: LogMel, encoder: Conformer, dtype: mx.Dtype, pieces: list[Piece], frames: int
) -> tuple[mx.array, mx.array]:
    """Encoder output and lengths of `pieces` zero-padded to `frames` feature frames."""
    features = batch_features(frontend, pieces, frames)
    feature_len = mx.array([p.feature_frames for p in pieces])
    return encoder(features.astype(dtype), feature_len)


def encode_each(
    frontend: LogMel, encoder: Conformer, dtype: mx.Dtype, pieces: list[Piece]
) -> tuple[mx.array, mx.array]:
    """Encoder output and lengths of `pieces`, each encoded alone (evaluated one by one, so
    that memory holds one piece's activations at a time), stacked and zero-padded."""
    outputs = []
    for piece in pieces:
        encoded, length = encode_padded(frontend, encoder, dtype, [piece], piece.feature_frames)
        mx.eval(encoded, length)
        outputs.append(encoded[0, : int(length[0])])
    longest = max(out.shape[0] for out in outputs)
    stacked = mx.stack([mx.pad(out, [(0, longest - out.shape[0]), (0, 0)]) for out in outputs])
    return stacked, mx.array([out.shape[0] for out in outputs])
