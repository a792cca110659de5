"""NeMo's speaker-cache compression (`SortformerModules._compress_spkcache`), on the host.

The cache keeps `spkcache_len` subsampled frames out of more: per speaker the frames whose
predictions are most confidently that speaker alone, each speaker boosted to keep a share,
plus `spkcache_sil_frames_per_spk` slots of the mean silence embedding per speaker; frames are
ordered by speaker, then by time. One stream (no batch axis); float32 as NeMo computes it.
"""

from __future__ import annotations

import math

import numpy as np

from .config import StreamingConfig


def log_pred_scores(preds: np.ndarray, config: StreamingConfig) -> np.ndarray:
    """High for confident, non-overlapped speech of a speaker (`_get_log_pred_scores`)."""
    threshold = np.float32(config.pred_score_threshold)
    log_probs = np.log(np.maximum(preds, threshold))
    log_1_probs = np.log(np.maximum(np.float32(1.0) - preds, threshold))
    total = log_1_probs.sum(axis=1, keepdims=True)
    return (log_probs - log_1_probs + total - np.float32(math.log(0.5))).astype(np.float32)


def disable_low_scores(preds: np.ndarray, scores: np.ndarray, min_pos_scores: int) -> np.ndarray:
    """Non-speech gets -inf; so does overlapped speech of a speaker with enough clean frames."""
    is_speech = preds > 0.5
    scores = np.where(is_speech, scores, -np.inf).astype(np.float32)
    is_pos = scores > 0
    replace = ~is_pos & is_speech & (is_pos.sum(axis=0) >= min_pos_scores)[None, :]
    return np.where(replace, -np.inf, scores).astype(np.float32)


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest (torch.topk's set; ties are not expected in real scores)."""
    return np.argsort(-values, kind="stable")[:k]


def boost_topk_scores(scores: np.ndarray, count: int, scale: float) -> np.ndarray:
    """Raise each speaker's `count` best scores by `-scale * log(0.5)` (-inf stays -inf)."""
    scores = scores.copy()
    boost = np.float32(scale * math.log(0.5))
    for speaker in range(scores.shape[1]):
        rows = _top(scores[:, speaker], count)
        scores[rows, speaker] -= boost
    return scores


def compress(
    embeddings: np.ndarray, preds: np.ndarray, mean_silence: np.ndarray, config: StreamingConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(n, D) frames and their (n, S) predictions -> the (spkcache_len, D) cache and its preds."""
    speakers = preds.shape[1]
    per_speaker = config.spkcache_len // speakers - config.spkcache_sil_frames_per_spk
    strong = math.floor(per_speaker * config.strong_boost_rate)
    weak = math.floor(per_speaker * config.weak_boost_rate)
    min_pos = math.floor(per_speaker * config.min_pos_scores_rate)

    scores = disable_low_scores(preds, log_pred_scores(preds, config), min_pos)
    if config.scores_boost_latest > 0:
        scores[config.spkcache_len :] += np.float32(config.scores_boost_latest)
    scores = boost_topk_scores(scores, strong, scale=2)
    scores = boost_topk_scores(scores, weak, scale=1)
    silence = config.spkcache_sil_frames_per_spk
    if silence > 0:
        scores = np.concatenate([scores, np.full((silence, speakers), np.inf, np.float32)])

    total = scores.shape[0]
    flat = scores.T.reshape(-1)  # speaker-major, as NeMo flattens
    chosen = _top(flat, config.spkcache_len)
    chosen = np.where(flat[chosen] != -np.inf, chosen, config.max_index)
    chosen = np.sort(chosen)
    disabled = chosen == config.max_index
    chosen = np.remainder(chosen, total)
    disabled |= chosen >= total - silence
    chosen[disabled] = 0

    cache = np.where(disabled[:, None], mean_silence[None, :], embeddings[chosen])
    cache_preds = np.where(disabled[:, None], np.float32(0.0), preds[chosen])
    return cache.astype(np.float32), cache_preds.astype(np.float32)


def silence_profile(
    mean: np.ndarray, count: int, embeddings: np.ndarray, preds: np.ndarray, threshold: float
) -> tuple[np.ndarray, int]:
    """The running mean embedding of frames whose summed predictions are under `threshold`."""
    is_silence = preds.sum(axis=1) < np.float32(threshold)
    new = int(is_silence.sum())
    if new == 0:
        return mean, count
    total = mean * np.float32(count) + (embeddings * is_silence[:, None]).sum(axis=0)
    count += new
    return (total / np.float32(max(count, 1))).astype(np.float32), count
