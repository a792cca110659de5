"""`Transducer`: prediction network + joint, with NeMo's top-level names `decoder` and `joint`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from mlx_asr_fusion import FusionModel

from .beam import BeamHypothesis, beam_search_rnnt, beam_search_tdt
from .config import TransducerConfig
from .greedy import GreedyDecoder, default_window
from .hypothesis import Hypothesis
from .malsd import malsd_batch
from .networks import JointNetwork, PredictionNetwork


class Transducer(nn.Module):
    """The decoding half of an RNNT / TDT model. Weights load from a converted model's
    `decoder.*` and `joint.*` tensors (`decoder.prediction.dec_rnn.lstm.0.Wx`, `joint.enc.weight`, ...)."""

    def __init__(self, config: TransducerConfig) -> None:
        super().__init__()
        self.config = config
        self.decoder = PredictionNetwork(config)
        self.joint = JointNetwork(config)

    PREFIXES = ("decoder.", "joint.")  # its tensors in a converted model's weights, names kept

    @classmethod
    def from_nemo(
        cls, nemo_config: Mapping[str, Any], weights: Mapping[str, mx.array]
    ) -> Transducer:
        """The transducer of a NeMo RNNT / TDT (or hybrid) model: its whole config, and the
        `decoder.*` and `joint.*` tensors of the model's weights (MLX names and layouts, as
        nemo-mlx-convert writes them), loaded strictly."""
        model = cls(TransducerConfig.from_nemo(nemo_config))
        model.load_weights(
            [(k, v) for k, v in weights.items() if k.startswith(cls.PREFIXES)], strict=True
        )
        return model

    def greedy(
        self,
        encoder_output: mx.array,
        lengths: mx.array | None = None,
        fusion: Sequence[FusionModel] = (),
    ) -> list[Hypothesis]:
        """NeMo's `greedy_batch` decoding of (B, T, D) encoder frames with valid lengths;
        with `fusion` (an n-gram LM, a boosting tree, each with its alpha: NeMo's
        `fusion_models` in its order, LM first) as NeMo's greedy shallow fusion."""
        return self.greedy_decoder()(encoder_output, lengths, fusion)

    def greedy_decoder(self, window: int | None = None) -> GreedyDecoder:
        """This model's greedy decoder (made once per window size, so its compiled step and
        the graphs it caches per shape are reused)."""
        window = window or default_window(self.joint, self.decoder)
        decoders = self.__dict__.setdefault("_greedy_decoders", {})
        if window not in decoders:
            cfg = self.config
            decoders[window] = GreedyDecoder(self.decoder, self.joint, blank_id=cfg.blank_id,
                                             durations=cfg.durations, max_symbols=cfg.max_symbols,
                                             window=window)  # fmt: skip
        return decoders[window]

    def beam(
        self,
        encoder_output: mx.array,
        lengths: mx.array | None = None,
        beam_size: int = 4,
        length_penalty: float = 1.0,
        *,
        strategy: str = "default",
        fusion: Sequence[FusionModel] = (),
        max_symbols: int | None = 10,
        pruning_mode: str = "late",
        blank_lm_score_mode: str = "lm_weighted_full",
    ) -> list[list[BeamHypothesis]]:
        """NeMo's beam search: an n-best list per utterance, best first. `strategy`
        "default" is NeMo's `beam` (per utterance, no fusion models, as in NeMo);
        "malsd_batch" is NeMo's batched search, which takes `fusion` (an n-gram LM and/or a
        boosting tree with their alphas, LM first: NeMo's `beam.ngram_lm_model` /
        `beam.boosting_tree`) and NeMo's `beam.max_symbols`, `beam.pruning_mode` and
        `beam.blank_lm_score_mode` (their defaults are NeMo's)."""
        batch, time, _ = encoder_output.shape
        sizes = [time] * batch if lengths is None else [int(n) for n in lengths.tolist()]
        cfg = self.config
        if strategy == "malsd_batch":
            return malsd_batch(self.decoder, self.joint, encoder_output, sizes,
                               blank_id=cfg.blank_id, durations=cfg.durations,
                               beam_size=beam_size, max_symbols=max_symbols, fusion=fusion,
                               pruning_mode=pruning_mode, blank_lm_score_mode=blank_lm_score_mode,
                               length_penalty=length_penalty)  # fmt: skip
        if strategy != "default":
            raise ValueError(f"beam strategy must be 'default' or 'malsd_batch', not {strategy!r}")
        if fusion:
            raise ValueError("fusion models need the 'malsd_batch' beam strategy (as in NeMo)")
        results = []
        for item, size in enumerate(sizes):
            frames = encoder_output[item, :size]
            if cfg.is_tdt:
                results.append(
                    beam_search_tdt(
                        self.decoder,
                        self.joint,
                        frames,
                        blank_id=cfg.blank_id,
                        durations=cfg.durations,
                        beam_size=beam_size,
                        length_penalty=length_penalty,
                    )
                )
            else:
                results.append(
                    beam_search_rnnt(
                        self.decoder,
                        self.joint,
                        frames,
                        blank_id=cfg.blank_id,
                        beam_size=beam_size,
                        length_penalty=length_penalty,
                    )
                )
        return results
