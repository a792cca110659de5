"""NeMo models configured as NVIDIA's cache-aware streaming checkpoints, and NeMo's streaming
outputs for them, lookahead by lookahead.

Needs the `reference` dependency group (nemo_toolkit[asr]==3.0.0 and torch). From the
repository root:

    python tests/reference/make_streaming_checkpoint_fixtures.py          # every checkpoint
    python tests/reference/make_streaming_checkpoint_fixtures.py nemotron-speech-streaming-en-0.6b

Three checkpoints, each from the config committed under `tests/reference/configs/` (its source
in the file's header), with only sizes shrunk (`make_checkpoint_fixtures.shrink`: layers,
d_model, heads, subsampling channels, LSTM and joint width, vocabulary) and every flag kept:
`use_bias`, `xscaling`, `untie_biases`, dw_striding x8 with `causal_downsampling`, layer-norm
convolutions of kernel 9 with `conv_context_size: causal`, the `att_context_size` list with
its real left context (70) and lookaheads (13, 6, 1, 0) and `att_context_style:
chunked_limited`, the LSTM layers, `max_symbols`, the preprocessor (`normalize: NA`, dither
as published: NeMo dithers only in training), the tokenizer type and the decoding sections.

- `stt_en_fastconformer_hybrid_large_streaming_multi`: its complete published
  `model_config.yaml` (training sections removed); RNNT + CTC hybrid, xscaling, biases,
  1 LSTM layer, 80 mels, lower-case tokenizer.
- `nemotron-speech-streaming-en-0.6b`: its complete published config was NOT available. The
  config file is NeMo's training recipe of the model's family (cache-aware FastConformer
  Transducer XLarge), and `STATED` lays over it every value that the header of that file
  lists as the real checkpoint's where the recipe differs, each with its source; they are
  recorded in the fixture's JSON as `config_sources` (with `"*"` naming the recipe itself).
  RNNT only, no biases, no xscaling, 2 LSTM layers, 128 mels, cased tokenizer with
  punctuation. Values the header marks as not verified (heads, xscaling, untie_biases,
  decoding strategy) are the recipe's.
- `parakeet_realtime_eou_120m-v1`: its complete published config was NOT available either:
  the config file is NeMo's end-of-utterance training recipe of the model (17 x 512 cache-aware
  FastConformer-Transducer, `examples/asr/conf/asr_eou/`), with `EOU_STATED` laid over it (128
  mels, `att_context_size: [70, 1]`, each with its source). The tokenizer ends with the
  `<EOU>` and `<EOB>` pieces, appended as user-defined pieces after the BPE ones, as the real
  one has them (ids 1024 and 1025 of 1026; here 126 and 127 of 128). Built as NeMo's
  `EncDecRNNTBPEEOUModel` (the recipe's class); the real `.nemo` restores as
  `EncDecRNNTBPEModel`, so the same config and weights are also run as that class
  (`plain_class`: its offline ids, and NeMo's `transcribe` output, which the EOU class cannot
  give for arrays). The joint's `<EOU>` and `<EOB>` outputs are raised so that each beats
  every other output on a set share of (frame, state) samples (`MARKER_SHARES`): the markers
  are emitted on some frames and not on others (asserted). Recorded besides the keys
  below: `markers` (their ids), and per lookahead and clip `eou` (NeMo's
  `_get_eou_predictions_from_hypotheses` on the offline hypothesis: the frames it marks with
  `<EOU>` and `<EOB>`). It has one lookahead and no `regular` variant.

Weights are NeMo's random initialisation with the offsets and scales of
`make_model_fixtures.make_decisions_depend_on_audio`, so that greedy decisions vary with the
audio (`check_varied`, asserted on the speech clips). For each lookahead, NeMo's cache-aware
streaming simulation and the offline pass are recorded as `make_streaming_fixtures.references`
records them for `streaming_hybrid` (tests/reference/README.md, "Streaming fixture"): the
per-step encoder outputs, RNNT ids (after each step and final) and frames, CTC alignments and
ids, the offline encoder output, ids and alignment. Then the same for the checkpoint with
`att_context_style: regular` (same weights): NeMo 3.0.0's `ConformerEncoder` streams that
style too (`setup_streaming_params`: lookahead = right context x layers, `cache_drop_size`
= the lookahead, one encoder frame per step after the first), under the `regular` key.

- `nemotron-3.5-asr-streaming-0.6b` (`EncDecRNNTBPEModelWithPrompt`): its complete published
  config was NOT available either. The config file is NeMo's recipe of the class
  (`fastconformer_transducer_bpe_streaming_prompt.yaml`), with `STATED_35` laid over it (left
  context 56, lookaheads 3/0/6/13, 24 layers, the real prompt dictionary's `nn-NO`/`nn`,
  fastemit 0.005, language tags kept in the text). The tokenizer is trained on the
  multilingual corpus with six `<xx-XX>` language tags as user-defined pieces (the real
  vocabulary has them). NeMo's random `prompt_kernel` weighs one of 128 one-hot inputs as one
  acoustic input, so every language would decode alike: `strengthen_prompt` scales the
  one-hot's columns to the spread of the acoustic part (`weight_choices`), and the tuning
  runs on the `auto`-prompted frames. References are recorded per target language (`auto`,
  NeMo's default, `en-US`, `de-DE`: `prompt_references`): the streaming keys above for each
  lookahead and the model card's 160 ms (`CARD_CONTEXTS_35`, lookahead 1: not in the config,
  NeMo warns and streams), after `set_inference_prompt`; NeMo's offline greedy decisions of
  the speech clips; `transcribe(..., target_lang=)` of every test clip; and once with
  `decoding.strip_lang_tags` on. It asserts that the languages decode some clip differently.
  No `regular`-style copy.

Three NeMo classes of which NVIDIA released no checkpoint, each on a released checkpoint's
config adapted to it as NeMo's own example config of the class does (`configs/<name>.yaml`
holds the keys laid over it; `adapted_from` names the checkpoint; `checkpoint` is null):
- `hybrid_eou_streaming` (`EncDecHybridRNNTCTCBPEEOUModel`): parakeet_realtime_eou_120m-v1's
  config with the `aux_ctc` of NeMo's hybrid EOU example. Recorded as the EOU model, plus the
  markers favoured on the CTC head too and, per clip, `eou[...]["ctc"]`: NeMo's CTC EOU
  predictions (`ctc_eou`); `plain_class` is `EncDecHybridRNNTCTCBPEModel`.
- `hybrid_prompt_streaming` (`EncDecHybridRNNTCTCBPEModelWithPrompt`): nemotron-3.5's config
  with the `aux_ctc` of NeMo's hybrid prompt example; recorded as the prompt model (without
  the card's extra lookahead), plus `transcribe_ctc` per language.
- `cache_aware_tdt_ctc_streaming` (`EncDecHybridRNNTCTCBPEModel` with a TDT transducer):
  stt_en_fastconformer_hybrid_large_streaming_multi's config with the TDT keys of NeMo's
  TDT-CTC recipe (`TDT_STATED`); the offline hypotheses' `durations` are recorded.

To keep the repository lean the clips are three (`CLIPS`), made from the 16 kHz WAV test
clips, which every loader reads exactly: `long` (three clips end to end, 10.2 s, 127 encoder
frames: the 70-frame left-context cache fills and then drops frames), `short` (1000 samples,
less than one encoder frame) and `silence` (1 s of digital zeros).

Writes tests/fixtures/checkpoints/<checkpoint>.{nemo,npz,json} (every checkpoint's three
files, or none):
- npz: `<stem>/features` (T, F) the buffer's features; `<lookahead>/<stem>/encoder` and
  `<lookahead>/<stem>/offline_encoder` (T', D); the same under `regular/`;
- json: provenance, `checkpoint`, `published_config` (+ sha256), `complete_config_published`,
  `config_sources`, `shrunk`, the restored model's `config`, `clips` (how each clip is made),
  `contexts` and `streaming_equals_offline` (chunked_limited, as published), and `regular`
  with the same two keys; for the prompt model instead `languages[<lang>]` (`prompt_index`,
  `offline_clips`, `stats`, `transcribe`, `contexts`, `streaming_equals_offline`; the top-level
  `contexts` are the default language's), `default_language`, `languages_differ_on`,
  `extra_contexts`, `transcribe_strip_lang_tags`, and in the npz `prompted/<lang>/long` (NeMo's
  projection of the `long` clip's offline encoder output at the default lookahead).
"""

from __future__ import annotations

import copy
import json
import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from nemo.collections.asr.models import (
    ASRModel,
    EncDecHybridRNNTCTCBPEModel,
    EncDecRNNTBPEModel,
    EncDecRNNTBPEModelWithPrompt,
)
from nemo.collections.asr.models.asr_eou_models import (
    EncDecHybridRNNTCTCBPEEOUModel,
    EncDecRNNTBPEEOUModel,
)
from nemo.collections.asr.models.hybrid_rnnt_ctc_bpe_models_prompt import (
    EncDecHybridRNNTCTCBPEModelWithPrompt,
)
from omegaconf import OmegaConf, open_dict
from sentencepiece import sentencepiece_model_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_checkpoint_fixtures as ckpt
import make_model_fixtures as base
import make_streaming_fixtures as streaming

COMMAND = "python tests/reference/make_streaming_checkpoint_fixtures.py"
SEED = base.SEED
MAX_MB = 3.2  # the three files of one fixture together

# Clips: name -> pieces (file, first sample, end sample or None), joined end to end.
CLIPS: dict[str, list[tuple[str, int, int | None]]] = {
    "long": [
        ("speech_16k_mono.wav", 0, None),
        ("silence_padded_16k.wav", 0, None),
        ("odd_length_16k.wav", 0, None),
    ],
    "short": [("shorter_than_frame_16k.wav", 0, None)],
    "silence": [("silence_padded_16k.wav", 0, 16000)],  # its first second: digital zeros
}

_HEADER = "tests/reference/configs/nemotron-speech-streaming-en-0.6b.yaml, header"
_NOTES = f"{_HEADER} [notes]: research notes of values read from the loaded .nemo"
# What the real nemotron-speech-streaming-en-0.6b has differently from the recipe its config
# file holds (the header's DIFFERENCES), with the sources the header gives.
STATED: dict[str, tuple[Any, str]] = {
    "encoder.att_context_size": (
        [[70, 13], [70, 6], [70, 1], [70, 0]],
        f"{_NOTES}; {_HEADER} [card]: chunk sizes 80/160/560/1120 ms (right context "
        "0/1/6/13); [runtime]: last_channel cache of 70 frames",
    ),
    "loss.warprnnt_numba_kwargs.fastemit_lambda": (0.005, _NOTES),
    "preprocessor.pad_value": (
        0.0,
        f"{_HEADER} [quote]: NatanFreeman/mlx_convert docs/conversion_decisions.md, the "
        "config structure from model_config.yaml",
    ),
}
_CLASS_SOURCE = (
    f"{_HEADER} [quote] (target EncDecRNNTBPEModel) and [modules] (NeMo's module tree of "
    "the restored model); the recipe's ASR+EOU token_init_* keys are left out"
)


EOU = "parakeet_realtime_eou_120m-v1"
_EOU_HEADER = f"tests/reference/configs/{EOU}.yaml, header"
# What the real parakeet_realtime_eou_120m-v1 has differently from the recipe its config file
# holds (the header's DIFFERENCES), with the sources the header gives.
EOU_STATED: dict[str, tuple[Any, str]] = {
    "encoder.att_context_size": ([70, 1], f"{_EOU_HEADER} [card]: attention context = [70,1]"),
    "preprocessor.features": (
        128,
        f"{_EOU_HEADER} [coreml] numMelBins 128, [onnx] 128-bin mel, [rs] N_MELS 128",
    ),
    "encoder.feat_in": (128, f"{_EOU_HEADER}: preprocessor.features (the recipe interpolates it)"),
}
MARKERS = ("<EOU>", "<EOB>")  # NeMo's EOU_STRING, EOB_STRING (data/audio_to_eou_label_lhotse.py)
# share of (frame, prediction state) samples on which each marker beats every other output
MARKER_SHARES = {"<EOU>": 0.08, "<EOB>": 0.03}

_HEADER_35 = "tests/reference/configs/nemotron-3.5-asr-streaming-0.6b.yaml, header"
# What the real nemotron-3.5-asr-streaming-0.6b has differently from the recipe its config
# file holds (the header's DIFFERENCES), with the sources the header gives.
STATED_35: dict[str, tuple[Any, str]] = {
    "encoder.n_layers": (24, f"{_HEADER_35} [notes]: 24 ConformerLayers"),
    "encoder.att_context_size": (
        [[56, 3], [56, 0], [56, 6], [56, 13]],
        f"{_HEADER_35} [study]: att_context_size of the saved model (first = default)",
    ),
    "model_defaults.prompt_dictionary.nn-NO": (104, f"{_HEADER_35} [log]"),
    "model_defaults.prompt_dictionary.nn": (104, f"{_HEADER_35} [log]"),
    "loss.warprnnt_numba_kwargs.fastemit_lambda": (0.005, f"{_HEADER_35} [log]"),
    "decoding.strip_lang_tags": (
        False,
        f"{_HEADER_35} [notes]: the real checkpoint's NeMo text keeps its <en-US> tags "
        "(NeMo's default, as if the key were absent)",
    ),
}
_CLASS_SOURCE_35 = f"{_HEADER_35} [target], [log]: EncDecRNNTBPEModelWithPrompt"
# The model card's 160 ms chunk (lookahead 1), not in the config's list: NeMo warns and streams.
CARD_CONTEXTS_35 = [[56, 1]]
# Language tags the real vocabulary holds (`<en-US>` ...), user-defined pieces here.
LANGUAGE_TAGS = ("<en-US>", "<en-GB>", "<de-DE>", "<fr-FR>", "<es-US>", "<es-ES>")


@dataclass(frozen=True)
class StreamingCheckpoint:
    spec: ckpt.Checkpoint
    complete: bool  # the complete published model_config.yaml is in tests/reference/configs
    regular: bool = True  # also record the `regular` attention style
    markers: tuple[str, ...] = ()  # pieces appended to the tokenizer (end-of-utterance models)
    # prompt models: the target languages recorded (the first is NeMo's default, `auto`),
    # contexts streamed besides the config's, and no `regular`-style copy
    languages: tuple[str, ...] = ()
    extra_contexts: tuple[tuple[int, int], ...] = ()
    max_mb: float = MAX_MB  # the three files together
    # a NeMo class run on a released checkpoint's config adapted to it (no such checkpoint
    # was released): where the class comes from, and the checkpoint adapted
    class_source: str = ""
    adapted_from: str = ""
    sizes: tuple[tuple[str, int], ...] = ()  # over `make_checkpoint_fixtures.SIZES`


CHECKPOINTS: dict[str, StreamingCheckpoint] = {
    "stt_en_fastconformer_hybrid_large_streaming_multi": StreamingCheckpoint(
        ckpt.Checkpoint(EncDecHybridRNNTCTCBPEModel, "lower", 128, 0.8), complete=True
    ),
    "nemotron-speech-streaming-en-0.6b": StreamingCheckpoint(
        ckpt.Checkpoint(
            EncDecRNNTBPEModel,
            "pnc",
            128,
            0.8,
            base="nemotron-speech-streaming-en-0.6b",
            stated=STATED,
        ),
        complete=False,
    ),
    EOU: StreamingCheckpoint(
        ckpt.Checkpoint(
            EncDecRNNTBPEEOUModel,
            "lower",
            128 - len(MARKERS),
            0.8,
            base=EOU,
            stated=EOU_STATED,
        ),
        complete=False,
        regular=False,
        markers=MARKERS,
    ),
    "nemotron-3.5-asr-streaming-0.6b": StreamingCheckpoint(
        ckpt.Checkpoint(
            EncDecRNNTBPEModelWithPrompt,
            "multilingual",
            128,
            0.6,  # 0.8 left tokens on 10 of 216 frames, two clips empty
            base="nemotron-3.5-asr-streaming-0.6b",
            stated=STATED_35,
            special=LANGUAGE_TAGS,
        ),
        complete=False,
        languages=("auto", "en-US", "de-DE"),
        extra_contexts=tuple(tuple(c) for c in CARD_CONTEXTS_35),
        max_mb=4.5,  # five lookaheads in three languages
    ),
}
_EOU_CLASS_SOURCE = (
    f"{_EOU_HEADER} [finetune]: NeMo's EOU recipe trains EncDecRNNTBPEEOUModel (built here); "
    "the released .nemo restores as EncDecRNNTBPEModel (run as `plain_class`)"
)

# NeMo classes that no released checkpoint has, each on a released checkpoint's config adapted
# to it as NeMo's own example config of the class does (the overlay file's header says how).
HYBRID_EOU, HYBRID_PROMPT, TDT_STREAMING = (
    "hybrid_eou_streaming", "hybrid_prompt_streaming", "cache_aware_tdt_ctc_streaming"
)  # fmt: skip
_TDT_SOURCE = (
    "tests/reference/configs/parakeet-tdt_ctc-110m.yaml (NeMo's fastconformer_hybrid_tdt_ctc_bpe.yaml): "
    "its `loss` section, interpolations resolved, in place of the streaming config's"
)
TDT_STATED: dict[str, tuple[Any, str]] = {
    "loss": (
        {"loss_name": "tdt",
         "tdt_kwargs": {"fastemit_lambda": 0.0, "clamp": -1.0, "durations": [0, 1, 2, 3, 4],
                        "sigma": 0.02, "omega": 0.1}},
        _TDT_SOURCE,
    ),
}  # fmt: skip
# smaller than the released checkpoints' fixtures (d_model 32, 16 subsampling channels),
# to keep the repository lean: every flag is kept as those are
SMALL = (("d_model", 32), ("subsampling_conv_channels", 16), ("pred_hidden", 32),
         ("joint_hidden", 32))  # fmt: skip
CHECKPOINTS.update({
    HYBRID_EOU: StreamingCheckpoint(
        ckpt.Checkpoint(EncDecHybridRNNTCTCBPEEOUModel, "lower", 128 - len(MARKERS), 0.8,
                        base=EOU, stated=EOU_STATED),
        complete=False, regular=False, markers=MARKERS,
        class_source=f"tests/reference/configs/{HYBRID_EOU}.yaml, header: NeMo's example config "
        "of EncDecHybridRNNTCTCBPEEOUModel (examples/asr/conf/asr_eou/"
        "fastconformer_hybrid_transducer_ctc_bpe_streaming.yaml)",
        adapted_from=EOU,
        sizes=SMALL,
        max_mb=1.5,
    ),
    HYBRID_PROMPT: StreamingCheckpoint(
        ckpt.Checkpoint(EncDecHybridRNNTCTCBPEModelWithPrompt, "multilingual", 128, 0.6,
                        base="nemotron-3.5-asr-streaming-0.6b", stated=STATED_35,
                        special=LANGUAGE_TAGS),
        complete=False, languages=("auto", "en-US", "de-DE"),
        class_source=f"tests/reference/configs/{HYBRID_PROMPT}.yaml, header: NeMo's example "
        "config of EncDecHybridRNNTCTCBPEModelWithPrompt (examples/asr/conf/fastconformer/"
        "hybrid_transducer_ctc/fastconformer_hybrid_transducer_ctc_bpe_prompt.yaml)",
        adapted_from="nemotron-3.5-asr-streaming-0.6b",
        max_mb=4.0,  # four lookaheads in three languages; at d_model 32 no token was left
    ),
    TDT_STREAMING: StreamingCheckpoint(
        # blank share 0.5: at 0.8 (d_model 32) tokens came on 7 of 216 frames
        ckpt.Checkpoint(EncDecHybridRNNTCTCBPEModel, "lower", 128, 0.5,
                        base="stt_en_fastconformer_hybrid_large_streaming_multi",
                        stated=TDT_STATED),
        complete=False, regular=False,
        class_source="tests/reference/configs/stt_en_fastconformer_hybrid_large_streaming_multi"
        ".yaml: its target, EncDecHybridRNNTCTCBPEModel (a TDT decoder is its decoding's "
        "model_type)",
        adapted_from="stt_en_fastconformer_hybrid_large_streaming_multi",
        sizes=SMALL,
        max_mb=1.5,
    ),
})  # fmt: skip


def append_markers(tokenizer: dict[str, Any], markers: tuple[str, ...]) -> None:
    """Append `markers` to the SentencePiece model as user-defined pieces after all others
    (NeMo's scripts/tokenizers/add_special_tokens_to_sentencepiece.py does the same), and to
    its `tokenizer.vocab` and `vocab.txt` as `create_spt_model` writes them."""
    directory = Path(tokenizer["dir"])
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((directory / "tokenizer.model").read_bytes())
    for marker in markers:
        piece = proto.pieces.add()
        piece.piece, piece.score = marker, 0.0
        piece.type = sentencepiece_model_pb2.ModelProto.SentencePiece.USER_DEFINED
    (directory / "tokenizer.model").write_bytes(proto.SerializeToString())
    with (directory / "tokenizer.vocab").open("a", encoding="utf8") as f:
        f.writelines(f"{marker}\t0\n" for marker in markers)
    with (directory / "vocab.txt").open("a", encoding="utf8") as f:
        f.writelines(f"##{marker}\n" for marker in markers)


@torch.no_grad()
def favour_markers(model: ASRModel, speech: list[np.ndarray], texts: list[str]) -> dict[str, Any]:
    """Raise each marker's joint bias so that it beats every other output, the blank
    included (as `make_decisions_depend_on_audio` set it), on its share (`MARKER_SHARES`)
    of the (frame, state) samples; a hybrid's CTC head the same on its share of the frames.
    Returns the biases chosen."""
    frames = base.encoder_frames(model, speech)
    states = base.prediction_outputs(model, texts)
    heads = [("", model.joint, base.output_inputs(model, model.joint, frames, states))]
    if isinstance(model, EncDecHybridRNNTCTCBPEModel):
        heads.append(("ctc_", model.ctc_decoder, frames))
    chosen: dict[str, Any] = {}
    for prefix, head, hidden in heads:
        layer, blank = base.output_layer(head), base.blank_index(head)
        for marker, share in MARKER_SHARES.items():
            label = model.tokenizer.token_to_id(marker)
            logits = base.logits_of(layer, hidden, slice(0, blank + 1))
            others = torch.cat([logits[:, :label], logits[:, label + 1 :]], dim=1)
            margin = logits[:, label] - others.max(-1).values
            layer.bias[label] -= base.threshold_between_samples(margin, 1 - share)
            chosen[f"{prefix}{marker}_bias"] = float(layer.bias[label])
    return chosen


@torch.no_grad()
def eou_references(
    model: ASRModel, signals: dict[str, np.ndarray], contexts: list[list[int]]
) -> dict[str, dict[str, Any]]:
    """Per lookahead and clip, NeMo's EOU predictions on the offline hypothesis
    (`ASREOUModelMixin._get_eou_predictions_from_hypotheses`: per encoder frame, whether
    the greedy decoder emitted `<EOU>` / `<EOB>` on it): the frames marked, and how many."""
    out: dict[str, dict[str, Any]] = {}
    for context in contexts:
        model.encoder.set_default_att_context_size(context)
        per_clip = {}
        for clip, x in signals.items():
            features, length = streaming.buffer_features(model, x)
            encoded, encoded_len = model.encoder(audio_signal=features, length=length)
            hyps = model.decoding.rnnt_decoder_predictions_tensor(
                encoded, encoded_len, return_hypotheses=True
            )
            (prediction,) = model._get_eou_predictions_from_hypotheses(hyps, None)
            per_clip[clip] = {
                **marked_frames(prediction),
                "ids": base.to_jsonable(hyps[0].y_sequence),
            }
            if isinstance(model, EncDecHybridRNNTCTCBPEModel):
                per_clip[clip]["ctc"] = ctc_eou(model, encoded, encoded_len)
        out[f"{context[0]}_{context[1]}"] = per_clip
    model.encoder.set_default_att_context_size(contexts[0])
    return out


def marked_frames(prediction: Any) -> dict[str, Any]:
    """An `EOUPrediction`'s frames marked with `<EOU>` and `<EOB>`, and how many frames."""
    return {
        "frames": len(prediction.eou_preds),
        "eou_frames": [i for i, p in enumerate(prediction.eou_preds) if p],
        "eob_frames": [i for i, p in enumerate(prediction.eob_preds) if p],
    }


def ctc_eou(model: ASRModel, encoded: torch.Tensor, encoded_len: torch.Tensor) -> dict[str, Any]:
    """A hybrid EOU model's CTC EOU predictions as its `validation_pass` makes them: NeMo's
    CTC greedy hypothesis with its alignment preserved (the class's own decoding setting),
    through `_get_eou_predictions_from_hypotheses` (per frame: the argmax is the marker), and
    the hypothesis's per-frame labels.
    NeMo cannot stream the CTC head with that setting (`streaming.streamable_ctc`)."""
    cfg = copy.deepcopy(model.cfg.aux_ctc.decoding)
    with open_dict(cfg):
        cfg.preserve_alignments = True  # as the class sets it (streaming turned it off)
    model.change_decoding_strategy(cfg, decoder_type="ctc", verbose=False)
    log_probs = model.ctc_decoder(encoder_output=encoded)
    hyps = model.ctc_decoding.ctc_decoder_predictions_tensor(
        log_probs, decoder_lengths=encoded_len, return_hypotheses=True
    )
    assert isinstance(hyps[0].alignments, tuple), "the CTC alignment was not preserved"
    (prediction,) = model._get_eou_predictions_from_hypotheses(hyps, None)
    # the CTC hypothesis's `y_sequence` here is the per-frame greedy labels, uncollapsed
    return {**marked_frames(prediction), "alignment": base.to_jsonable(hyps[0].y_sequence)}


@torch.no_grad()
def plain_class(
    config: dict[str, Any], restored: ASRModel, signals: dict[str, np.ndarray]
) -> dict[str, Any]:
    """The same config and weights as `EncDecRNNTBPEModel` (the class the released .nemo
    has; `EncDecHybridRNNTCTCBPEModel` for the hybrid EOU class): its offline ids per clip, and NeMo's `transcribe(timestamps=True)` of the clips
    of 1 s or more (shorter ones are padded by `transcribe`, which the others are not)."""
    hybrid = isinstance(restored, EncDecHybridRNNTCTCBPEModel)
    cls = EncDecHybridRNNTCTCBPEModel if hybrid else EncDecRNNTBPEModel
    plain = cls(cfg=OmegaConf.create(config)).eval()
    plain.load_state_dict(restored.state_dict())
    streaming.no_timestamps(plain)
    offline = {clip: streaming.offline(plain, x)[2]["rnnt"]["ids"] for clip, x in signals.items()}
    base.enable_timestamps(plain)
    long_enough = {c: x for c, x in signals.items() if len(x) >= 16000}
    return {
        "model_class": f"{cls.__module__}.{cls.__name__}",
        "offline_ids": offline,
        "transcribe": base.transcripts(plain, long_enough, batch_size=1),
    }


def marker_stats(contexts: dict[str, Any], markers: dict[str, int]) -> dict[str, Any]:
    """Where the markers fall in NeMo's streaming output: per marker, per clip, how many."""
    return {
        marker: {
            f"{key}/{clip}": c["rnnt"]["ids"].count(label)
            for key, entry in contexts.items()
            for clip, c in entry["clips"].items()
        }
        for marker, label in markers.items()
    }


def check_markers(stats: dict[str, Any], eou: dict[str, Any]) -> None:
    """`<EOU>` is emitted, on some frames of the long clip and not on others (on fewer than a
    tenth of them): the decision depends on the audio."""
    assert any(stats["<EOU>"].values()), stats
    for clips in eou.values():
        assert 0 < len(clips["long"]["eou_frames"]) < clips["long"]["frames"] / 10, clips["long"]


def keep_durations(model: ASRModel) -> None:
    """A TDT model's hypotheses carry each token's duration (`tdt_include_token_duration`,
    which records and decides nothing else), so that the offline ones are recorded. (NeMo's
    streamed hypothesis does not merge them across steps as it merges `y_sequence`: they
    are not recorded.)"""
    cfg = copy.deepcopy(model.cfg.decoding)
    if cfg.get("model_type") != "tdt":
        return
    with open_dict(cfg):
        cfg.tdt_include_token_duration = True
    hybrid = isinstance(model, EncDecHybridRNNTCTCBPEModel)
    model.change_decoding_strategy(
        cfg, verbose=False, **({"decoder_type": "rnnt"} if hybrid else {})
    )


def load_clips() -> dict[str, np.ndarray]:
    """Each clip's samples, from the pieces as NeMo's loader reads them."""
    return {
        name: np.concatenate([base.load_clip(file)[start:end] for file, start, end in pieces])
        for name, pieces in CLIPS.items()
    }


def contexts_of(config: dict[str, Any]) -> list[list[int]]:
    contexts = config["encoder"]["att_context_size"]
    return [list(c) for c in (contexts if isinstance(contexts[0], list) else [contexts])]


def with_style(config: dict[str, Any], style: str) -> dict[str, Any]:
    config = copy.deepcopy(config)
    config["encoder"]["att_context_style"] = style
    return config


def regular_references(
    model: ASRModel, signals: dict[str, np.ndarray], contexts: list[list[int]]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """`make_streaming_fixtures.references` for each lookahead and clip, where NeMo streams it.

    NeMo 3.0.0 cannot stream every clip in the `regular` style: once a chunk has fewer
    encoder frames than `cache_drop_size` (the lookahead, right context x layers) the caches
    get a negative length and the next step fails in attention (a size mismatch), which ends
    every stream longer than one step whose last chunks are short. Those clips get NeMo's
    offline pass only, and its error (`nemo_streaming_error`).
    """
    arrays: dict[str, np.ndarray] = {}
    per_context: dict[str, Any] = {}
    for context in contexts:
        key = f"{context[0]}_{context[1]}"
        for clip, x in signals.items():
            try:
                clip_arrays, meta = streaming.references(model, {clip: x}, [context])
                entry = meta["contexts"][key]
            except RuntimeError as error:
                model.encoder.set_default_att_context_size(context)
                _, encoded, off = streaming.offline(model, x)
                clip_arrays = {f"{key}/{clip}/offline_encoder": encoded}
                entry = {
                    "att_context_size": context,
                    "streaming_cfg": streaming.streaming_cfg(model),
                    "clips": {clip: {"num_samples": len(x), "offline": off,
                                     "nemo_streaming_error": str(error)}},
                }  # fmt: skip
            arrays.update(clip_arrays)
            per_context.setdefault(key, {**entry, "clips": {}})["clips"].update(entry["clips"])
    model.encoder.set_default_att_context_size(contexts[0])
    streamed = [c for e in per_context.values() for c in e["clips"].values() if "steps" in c]
    agree = all(c["streaming_equals_offline"] for c in streamed)
    return arrays, {"contexts": per_context, "streaming_equals_offline": agree}


@torch.no_grad()
def strengthen_prompt(model: ASRModel, signals: list[np.ndarray]) -> float:
    """Scale the one-hot's columns of `prompt_kernel.0` so that a language moves its output as
    much as the audio does; returns the factor.

    At NeMo's random initialisation one of 128 one-hot inputs weighs as one input of the
    d_model acoustic ones, and every language would decode alike: the factor is the spread of
    the acoustic part over the clips' (unprompted) encoder frames over that of the columns.
    """
    frames = base.encoder_frames(model, signals)  # no prompt set yet: the encoder's own
    first = model.prompt_kernel[0]
    d_model = frames.shape[1]
    acoustic = frames @ first.weight[:, :d_model].T
    scale = float(acoustic.std() / first.weight[:, d_model:].std())
    first.weight[:, d_model:] *= scale
    return scale


def prompt_references(
    model: ASRModel,
    signals: dict[str, np.ndarray],
    contexts: list[list[int]],
    checkpoint: StreamingCheckpoint,
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    """A prompt model's references for each of `checkpoint.languages` (the first NeMo's
    default `auto`): (npz arrays, the default language's streaming keys, `languages`...).

    Per language (`set_inference_prompt`, `transcribe(..., target_lang=)`): NeMo's offline
    greedy decisions of the speech clips with timestamps (`clip_references`, prompt applied)
    and their stats, `transcribe` of every test clip, and `make_streaming_fixtures.references`
    for every context (the config's and `extra_contexts`). The encoder's own output does not
    depend on the language: the npz keeps it once (checked equal), plus the prompted offline
    output of the `long` clip per language at the default context (`prompted/<lang>/long`).
    """
    every = [*contexts, *(list(c) for c in checkpoint.extra_contexts)]
    test_clips = {clip: base.load_clip(clip) for clip in base.CLIPS}
    speech = {clip: test_clips[clip] for clip in base.SPEECH_CLIPS}
    arrays: dict[str, np.ndarray] = {}
    languages: dict[str, Any] = {}
    default_key = f"{contexts[0][0]}_{contexts[0][1]}"
    for lang in checkpoint.languages:
        model.set_inference_prompt(lang)
        base.enable_timestamps(model)
        offline_arrays, clips = base.clip_references(model, speech)
        stats = base.decision_stats(clips, offline_arrays, blank=model.tokenizer.vocab_size)
        transcribed = base.transcripts(model, test_clips, batch_size=1, target_lang=lang)
        by_ctc = {}
        if isinstance(model, EncDecHybridRNNTCTCBPEModel):  # the hybrid's CTC head too
            streaming.set_head(model, "ctc")
            by_ctc = {"transcribe_ctc": base.transcripts(model, test_clips, batch_size=1,
                                                         target_lang=lang)}  # fmt: skip
            streaming.set_head(model, "rnnt")
        streaming.no_timestamps(model)
        lang_arrays, streamed = streaming.references(model, signals, every)
        for key, value in lang_arrays.items():
            if key in arrays:
                np.testing.assert_array_equal(arrays[key], value)  # the encoder's own
        arrays.update(lang_arrays)
        raw = torch.from_numpy(lang_arrays[f"{default_key}/long/offline_encoder"].T)[None]
        with torch.no_grad():
            arrays[f"prompted/{lang}/long"] = model._apply_prompt_to_encoded(raw)[0].T.numpy()
        languages[lang] = {
            "prompt_index": model._inference_prompt_index,
            "offline_clips": clips,
            "stats": stats,
            "transcribe": transcribed,
            **by_ctc,
            **streamed,
        }
    model.set_inference_prompt(checkpoint.languages[0])
    # NeMo's text with `decoding.strip_lang_tags` on (the recipe's value), default language
    saved = copy.deepcopy(model.cfg.decoding)
    stripping = copy.deepcopy(saved)
    with open_dict(stripping):
        stripping.strip_lang_tags = True
    model.change_decoding_strategy(stripping, verbose=False)
    stripped = base.transcripts(
        model, test_clips, batch_size=1, target_lang=checkpoint.languages[0]
    )
    model.change_decoding_strategy(saved, verbose=False)
    differ = [clip for clip in test_clips
              if len({tuple(languages[lang]["transcribe"][clip]["ids"]) for lang in languages}) > 1]  # fmt: skip
    assert differ, "every language decodes every clip alike"
    default = languages[checkpoint.languages[0]]
    published_style = {"contexts": default["contexts"],
                       "streaming_equals_offline": default["streaming_equals_offline"]}  # fmt: skip
    extra = {
        "languages": languages,
        "default_language": checkpoint.languages[0],
        "languages_differ_on": differ,
        "extra_contexts": [list(c) for c in checkpoint.extra_contexts],
        "transcribe_strip_lang_tags": stripped,
    }
    return arrays, published_style, extra


def make_fixture(
    name: str, checkpoint: StreamingCheckpoint, work: Path, staging: Path
) -> dict[str, Any]:
    spec = checkpoint.spec
    config_path = ckpt.CONFIGS / f"{name}.yaml"
    published, sources = ckpt.full_config(name, spec)
    if not checkpoint.complete:
        sources["model_class"] = (
            checkpoint.class_source if checkpoint.class_source
            else _EOU_CLASS_SOURCE if checkpoint.markers
            else _CLASS_SOURCE_35 if checkpoint.languages
            else _CLASS_SOURCE
        )  # fmt: skip
    tokenizer = ckpt.train_tokenizer(work / name / "tokenizer", published, spec)
    append_markers(tokenizer, checkpoint.markers)
    default_sizes = dict(ckpt.SIZES)
    ckpt.SIZES.update(checkpoint.sizes)
    try:
        config, shrunk = ckpt.shrink(
            published, tokenizer, issubclass(spec.cls, EncDecHybridRNNTCTCBPEModel)
        )
    finally:
        ckpt.SIZES.update(default_sizes)
    assert config["encoder"]["att_context_style"] == "chunked_limited", name
    contexts = contexts_of(config)
    torch.manual_seed(SEED)
    model = spec.cls(cfg=OmegaConf.create(config), trainer=None).eval()
    speech = {clip: base.load_clip(clip) for clip in base.SPEECH_CLIPS}
    texts = ckpt.corpus(spec.text, random.Random(SEED))[:48]
    if checkpoint.languages:  # tuned on what the joint reads: the default language's prompt
        prompt_scale = strengthen_prompt(model, list(speech.values()))
        model.set_inference_prompt(checkpoint.languages[0])
    chosen = base.make_decisions_depend_on_audio(
        model, list(speech.values()), texts, spec.blank_share
    )
    if checkpoint.markers:
        chosen.update(favour_markers(model, list(speech.values()), texts))
    if checkpoint.languages:
        chosen["prompt_onehot_scale"] = prompt_scale
    path = staging / f"{name}.nemo"
    model.save_to(str(path))
    restored = ASRModel.restore_from(str(path), map_location="cpu").eval()
    restored_config = OmegaConf.to_container(restored.cfg, resolve=True, enum_to_str=True)
    # greedy decisions offline (default lookahead, default language) vary with the audio of
    # the speech clips
    if checkpoint.languages:
        restored.set_inference_prompt(checkpoint.languages[0])
    base.enable_timestamps(restored)
    arrays0, clips0 = base.clip_references(restored, speech)
    stats = base.decision_stats(clips0, arrays0, blank=restored.tokenizer.vocab_size)
    base.check_varied(stats)

    signals = load_clips()
    extra: dict[str, Any] = {}
    if checkpoint.languages:
        arrays, published_style, prompted = prompt_references(restored, signals, contexts,
                                                              checkpoint)  # fmt: skip
        extra.update(prompted)
    else:
        streaming.no_timestamps(restored)  # NeMo's partial-hypothesis merge fails with timestamps
        keep_durations(restored)
        arrays, published_style = streaming.references(restored, signals, contexts)
    if checkpoint.regular and not checkpoint.languages:
        # the same checkpoint and weights with att_context_style: regular
        regular = spec.cls(cfg=OmegaConf.create(with_style(config, "regular"))).eval()
        regular.load_state_dict(restored.state_dict())
        streaming.no_timestamps(regular)
        regular_arrays, regular_style = regular_references(regular, signals, contexts)
        arrays.update({k if k.endswith("/features") else f"regular/{k}": v
                       for k, v in regular_arrays.items()})  # fmt: skip
        extra["regular"] = {"att_context_style": "regular", **regular_style}
    if checkpoint.markers:
        markers = {m: restored.tokenizer.token_to_id(m) for m in checkpoint.markers}
        assert markers == {"<EOU>": restored.eou_token, "<EOB>": restored.eob_token}, markers
        eou = eou_references(restored, signals, contexts)
        for key, per_clip in eou.items():
            for clip, entry in per_clip.items():
                assert (
                    entry["ids"]
                    == published_style["contexts"][key]["clips"][clip]["offline"]["rnnt"]["ids"]
                )
                published_style["contexts"][key]["clips"][clip]["eou"] = entry
        extra["markers"] = markers
        extra["marker_stats"] = marker_stats(published_style["contexts"], markers)
        check_markers(extra["marker_stats"], eou)
        extra["plain_class"] = plain_class(config, restored, signals)
        for clip, ids in extra["plain_class"]["offline_ids"].items():
            key = next(iter(published_style["contexts"]))
            assert ids == published_style["contexts"][key]["clips"][clip]["offline"]["rnnt"]["ids"]

    decoding = restored_config.get("decoding") or {}
    meta = {
        **base.made_by(f"{COMMAND} {name}"),
        "tokenizer_model_sha256": base.file_sha256(Path(tokenizer["dir"]) / "tokenizer.model"),
        "checkpoint": None if checkpoint.adapted_from else f"nvidia/{name}",
        "adapted_from": f"nvidia/{checkpoint.adapted_from}" if checkpoint.adapted_from else None,
        "published_config": str(config_path.relative_to(base.ROOT)),
        "published_config_sha256": base.file_sha256(config_path),
        "complete_config_published": checkpoint.complete,
        "config_sources": sources,
        "shrunk": shrunk,
        "model_class": f"{type(restored).__module__}.{type(restored).__name__}",
        "decoding_strategy": decoding.get("strategy"),
        "max_symbols": (decoding.get("greedy") or {}).get("max_symbols"),
        "weight_choices": chosen,
        "stats": stats,
        "config": restored_config,
        "clips": {
            clip: {"pieces": [list(p) for p in CLIPS[clip]], "num_samples": len(signals[clip])}
            for clip in CLIPS
        },
        **published_style,
        **extra,
    }
    np.savez_compressed(staging / f"{name}.npz", **arrays)
    indent = None if checkpoint.adapted_from else 1  # the adapted ones' JSON compact: smaller
    (staging / f"{name}.json").write_text(json.dumps(base.to_jsonable(meta), indent=indent) + "\n")
    report(name, meta, staging, checkpoint.max_mb)
    return meta


def report(name: str, meta: dict[str, Any], staging: Path, max_mb: float = MAX_MB) -> None:
    sizes = {p.suffix: p.stat().st_size / 1e6 for p in staging.glob(f"{name}.*")}
    print(f"{name}: {json.dumps({k: round(v, 2) for k, v in sizes.items()})} MB")
    print(f"  shrunk: {json.dumps(meta['shrunk'])}")
    print(f"  config_sources: {sorted(meta['config_sources'])}")
    print(f"  stats: {json.dumps(meta['stats'])}")
    styles = [("chunked_limited", meta)] + (
        [("regular", meta["regular"])] if "regular" in meta else []
    )
    if "marker_stats" in meta:
        print(f"  markers: {json.dumps(meta['marker_stats'])}")
    for lang, entry in meta.get("languages", {}).items():
        print(f"  {lang} ({entry['prompt_index']}): stats {json.dumps(entry['stats'])}")
    if "languages_differ_on" in meta:
        print(f"  languages differ on: {meta['languages_differ_on']}")
    for style, entry in styles:
        print(f"  {style}: streaming equals offline: {entry['streaming_equals_offline']}")
        for key, context in entry["contexts"].items():
            print(f"    {key}: {context['streaming_cfg']}")
            for clip, c in context["clips"].items():
                if "nemo_streaming_error" in c:
                    print(f"      {clip}: NeMo fails: {c['nemo_streaming_error'][:70]}")
                    continue
                ctc = f" ctc {len(c['ctc']['ids'])}" if "ctc" in c else ""
                print(f"      {clip}: {len(c['steps'])} steps, rnnt {len(c['rnnt']['ids'])}"
                      f"{ctc} tokens, = offline {c['streaming_equals_offline']}")  # fmt: skip
    assert sum(sizes.values()) < max_mb, sizes


def main() -> None:
    names = ckpt.chosen_checkpoints(__doc__, CHECKPOINTS)
    np.random.seed(SEED)  # noqa: NPY002 - in case a NeMo code path draws from the global RNG
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "out"
        staging.mkdir()
        for name in names:
            make_fixture(name, CHECKPOINTS[name], Path(tmp), staging)
        base.publish(staging, ckpt.OUT)


if __name__ == "__main__":
    main()
