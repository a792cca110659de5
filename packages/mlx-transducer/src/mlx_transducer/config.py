"""`TransducerConfig`: prediction network, joint network and decoding settings of an RNNT/TDT model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ACTIVATIONS = ("relu", "tanh", "sigmoid")

# Every key NeMo's RNNTDecoder / RNNTJoint sections may have: read here, or with no effect on
# inference (training, initialisation, memory tricks). Any other key is refused, as the
# encoder's and the front end's configs refuse theirs: never a silently different model.
_DECODER_KEYS = {
    "_target_", "vocab_size", "prednet", "blank_as_pad", "normalization_mode",
    "random_state_sampling",  # training only
}  # fmt: skip
_PREDNET_KEYS = {
    "pred_hidden", "pred_rnn_layers", "rnn_hidden_size", "normalization_mode",
    "dropout", "t_max", "forget_gate_bias", "weights_init_scale", "hidden_hidden_bias_scale",
}  # fmt: skip
_JOINT_KEYS = {
    "_target_", "jointnet", "num_classes", "num_extra_outputs", "vocabulary",
    "log_softmax",  # normalisation of the logits: no argmax changes; ours is always log-softmax
    "preserve_memory", "fuse_loss_wer", "fused_batch_size", "experimental_fuse_loss_wer",
    "masking_prob",  # training only
}  # fmt: skip
_JOINTNET_KEYS = {"joint_hidden", "activation", "dropout", "encoder_hidden", "pred_hidden"}


def _refuse_unknown(section: str, cfg: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"{section} config key {unknown[0]!r} is not supported")


@dataclass(frozen=True)
class TransducerConfig:
    """What the prediction net, joint and greedy decoder need, in NeMo's terms.

    `vocab_size` is the tokenizer's vocabulary, without blank (NeMo's `decoder.vocab_size`,
    `joint.num_classes`); blank is the last class (`blank_id == vocab_size`).
    `durations` is empty for RNNT and lists the TDT durations (e.g. (0, 1, 2, 3, 4)).
    """

    vocab_size: int
    pred_hidden: int
    pred_rnn_layers: int
    joint_hidden: int
    encoder_hidden: int
    activation: str = "relu"
    joint_dropout: bool = True  # only changes the joint's layer index: joint_net.2 vs .1
    durations: tuple[int, ...] = ()
    max_symbols: int | None = 10

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"joint activation {self.activation!r} is not supported; supported: {', '.join(ACTIVATIONS)}"
            )
        if self.durations and (min(self.durations) < 0 or 1 not in self.durations):
            raise ValueError(
                f"TDT durations must be >= 0 and include 1, got {list(self.durations)}"
            )

    @property
    def blank_id(self) -> int:
        return self.vocab_size

    @property
    def is_tdt(self) -> bool:
        return bool(self.durations)

    @property
    def num_outputs(self) -> int:
        """Joint outputs: vocabulary, blank, then one logit per duration (TDT)."""
        return self.vocab_size + 1 + len(self.durations)

    @classmethod
    def from_nemo(cls, cfg: Mapping[str, Any]) -> TransducerConfig:
        """Build from a whole NeMo RNNT/TDT (or hybrid) model config.

        A key of the decoder or joint sections that is neither read nor known to leave
        inference unchanged is refused with its name (as every `from_nemo` here does).

        TDT durations are `loss.tdt_kwargs.durations`, as NeMo decodes with them
        (`set_decoding_type_according_to_loss` overwrites `decoding.durations`, and
        `model_defaults.tdt_durations` only fills configs in); the joint's extra outputs
        must match them."""
        decoder, joint = cfg.get("decoder") or {}, cfg.get("joint") or {}
        prednet, jointnet = decoder.get("prednet") or {}, joint.get("jointnet") or {}
        for section, part, known in (("decoder", decoder, _DECODER_KEYS),
                                     ("decoder.prednet", prednet, _PREDNET_KEYS),
                                     ("joint", joint, _JOINT_KEYS),
                                     ("joint.jointnet", jointnet, _JOINTNET_KEYS)):  # fmt: skip
            _refuse_unknown(section, part, known)
        target = str(decoder.get("_target_", "RNNTDecoder")).rsplit(".", 1)[-1]
        if target != "RNNTDecoder":
            raise ValueError(
                f"prediction network {target!r} is not supported; supported: RNNTDecoder"
            )
        if not decoder.get("blank_as_pad", True):
            raise ValueError("decoder.blank_as_pad=false is not supported")
        if prednet.get("rnn_hidden_size", -1) not in (-1, None, prednet.get("pred_hidden")):
            raise ValueError("prednet.rnn_hidden_size different from pred_hidden is not supported")
        if prednet.get("normalization_mode") not in (None, "null"):
            raise ValueError(
                f"prednet.normalization_mode={prednet['normalization_mode']!r} is not supported"
            )
        loss = cfg.get("loss") or {}
        loss_name = loss.get("loss_name", "default")
        durations: tuple[int, ...] = ()
        if loss_name == "tdt":
            durations = tuple(int(d) for d in (loss.get("tdt_kwargs") or {}).get("durations", ()))
            if not durations:
                raise ValueError("a TDT model config must list loss.tdt_kwargs.durations")
        elif loss_name not in ("default", "warprnnt_numba", "pytorch", "warprnnt", "graph_rnnt"):
            raise ValueError(f"transducer loss {loss_name!r} (e.g. multi-blank) is not supported")
        extra = int(joint.get("num_extra_outputs", 0) or 0)
        if extra != len(durations):
            raise ValueError(
                f"joint.num_extra_outputs={extra} does not match {len(durations)} TDT durations"
            )
        greedy = ((cfg.get("decoding") or {}).get("greedy")) or {}
        max_symbols = greedy.get("max_symbols", 10)
        return cls(
            vocab_size=int(decoder.get("vocab_size", joint.get("num_classes"))),
            pred_hidden=int(prednet["pred_hidden"]),
            pred_rnn_layers=int(prednet.get("pred_rnn_layers", 1)),
            joint_hidden=int(jointnet["joint_hidden"]),
            encoder_hidden=int(jointnet["encoder_hidden"]),
            activation=str(jointnet.get("activation", "relu")).lower(),
            joint_dropout=bool(jointnet.get("dropout", 0.0)),
            durations=durations,
            max_symbols=None if max_symbols is None else int(max_symbols),
        )
