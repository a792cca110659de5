"""A tiny cache-aware streaming FastConformer, and NeMo's own streaming outputs for it.

Needs the `reference` dependency group (nemo_toolkit[asr]==3.0.0 and torch). From the
repository root:

    python tests/reference/make_streaming_fixtures.py
    # on the project machine: /work/ref-venv/bin/python tests/reference/make_streaming_fixtures.py

The model is an `EncDecHybridRNNTCTCBPEModel` (RNNT and CTC heads) with the encoder
layout of NVIDIA's multi-lookahead streaming checkpoints: `causal_downsampling: true`,
`att_context_style: chunked_limited`, `att_context_size` as a list of [left, right]
contexts (here [[8, 3], [8, 1], [8, 0]]: lookaheads of 3, 1 and 0 encoder frames),
`conv_context_size: causal`, layer-norm convolutions and `normalize: NA` features. It is
tuned with `make_model_fixtures.make_decisions_depend_on_audio` so that greedy decoding
varies with the audio, and the script asserts that it does.

For every lookahead, every clip and both heads, it runs NeMo's cache-aware streaming
simulation as `examples/asr/asr_cache_aware_streaming/speech_to_text_cache_aware_streaming_infer.py`
does: `CacheAwareStreamingAudioBuffer` (whole-utterance features, cut into chunks with the
pre-encode cache), `encoder.get_initial_cache_state`, then `conformer_stream_step` per chunk
with `keep_all_outputs` on the last chunk and `drop_extra_pre_encoded` 0 on the first step and
`streaming_cfg.drop_extra_pre_encoded` after. It records the per-step encoder outputs (from
`encoder.cache_aware_stream_step` on the same inputs), the token ids after each step and at
the end, and the offline pass the script compares against (the whole feature buffer through
`conformer_stream_step` without caches).

Writes tests/fixtures/models/streaming_hybrid.{nemo,npz,json} (all three or none):
- npz `<lookahead>/<stem>/encoder`: (T', D) every step's encoder output, concatenated;
  `<lookahead>/<stem>/offline_encoder`: (T', D) the offline pass; `<stem>/features`: (T, F) the
  buffer's features (the same for every lookahead);
- json: provenance, config, `streaming_cfg` per lookahead, and per lookahead and clip
  `steps` (chunk feature frames, chunk lengths, encoder frames per step), `rnnt` (ids after
  each step, final ids and text, and token frames), `ctc` (the per-frame argmax of the whole
  stream, collapsed ids and text), and the offline ids / text / argmax.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from nemo.collections.asr.models import ASRModel, EncDecHybridRNNTCTCBPEModel
from nemo.collections.asr.parts.utils.streaming_utils import CacheAwareStreamingAudioBuffer
from omegaconf import OmegaConf, open_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_model_fixtures as base

COMMAND = "python tests/reference/make_streaming_fixtures.py"
NAME = "streaming_hybrid"
CONTEXTS = [[8, 3], [8, 1], [8, 0]]
BLANK_SHARE = 0.8


def model_config(tokenizer: dict[str, str]) -> dict[str, Any]:
    encoder = base.encoder_config(
        80,
        d_model=64,
        n_heads=4,
        causal_downsampling=True,
        att_context_size=CONTEXTS,
        att_context_style="chunked_limited",
        conv_context_size="causal",
        conv_norm_type="layer_norm",
    )
    return {
        "sample_rate": 16000,
        "tokenizer": tokenizer,
        "optim": None,
        "preprocessor": base.preprocessor_config(80, normalize="NA"),
        "encoder": encoder,
        **base.transducer_sections(64, pred_layers=1, joint_dropout=0.0, tdt=False),
        "aux_ctc": {
            "ctc_loss_weight": 0.3,
            "use_cer": False,
            "ctc_reduction": "mean_batch",
            **base.ctc_sections(64),
        },
    }


def drop_extra(model: ASRModel, step: int) -> int:
    """The example script's `calc_drop_extra_pre_encoded` (pad_and_drop_preencoded off)."""
    return 0 if step == 0 else model.encoder.streaming_cfg.drop_extra_pre_encoded


def set_head(model: ASRModel, head: str) -> None:
    """A hybrid model decodes with `head` from here on (a transducer-only model has one)."""
    if isinstance(model, EncDecHybridRNNTCTCBPEModel):
        model.change_decoding_strategy(decoder_type=head, verbose=False)


def streamable_ctc(model: ASRModel) -> None:
    """NeMo's `conformer_stream_step` hands its CTC decoding the greedy labels, not the
    log-probs, which NeMo refuses when the decoding keeps alignments ("Requested for
    alignments, but predictions provided were labels"): set by the hybrid EOU class, and
    left by `transcribe(timestamps=True)`. Off for streaming; it decides nothing."""
    cfg = model.cfg.aux_ctc.decoding
    if cfg.get("preserve_alignments"):
        with open_dict(cfg):
            cfg.preserve_alignments = False


def heads(model: ASRModel) -> list[str]:
    return ["rnnt", "ctc"] if isinstance(model, EncDecHybridRNNTCTCBPEModel) else ["rnnt"]


@torch.no_grad()
def stream(model: ASRModel, signal: np.ndarray, head: str) -> dict[str, Any]:
    """NeMo's cache-aware streaming simulation of one clip with the current lookahead."""
    if head == "ctc":
        streamable_ctc(model)
    set_head(model, head)
    buffer = CacheAwareStreamingAudioBuffer(model=model, online_normalization=False)
    buffer.append_audio(signal, stream_id=-1)
    channel, time, channel_len = model.encoder.get_initial_cache_state(batch_size=1)
    enc_cache = (channel.clone(), time.clone(), channel_len.clone())
    previous, pred_out = None, None
    steps: list[dict[str, Any]] = []
    encoded_steps: list[np.ndarray] = []
    ids_after_step: list[list[int]] = []
    for step, (chunk, lengths) in enumerate(iter(buffer)):
        last = buffer.is_buffer_empty()
        # the encoder alone on the same inputs: what conformer_stream_step decodes
        encoded, encoded_len, *next_cache = model.encoder.cache_aware_stream_step(
            processed_signal=chunk,
            processed_signal_length=lengths,
            cache_last_channel=enc_cache[0],
            cache_last_time=enc_cache[1],
            cache_last_channel_len=enc_cache[2],
            keep_all_outputs=last,
            drop_extra_pre_encoded=drop_extra(model, step),
        )
        enc_cache = tuple(next_cache)
        encoded_steps.append(encoded[0, :, : int(encoded_len[0])].T.numpy())
        result = model.conformer_stream_step(
            processed_signal=chunk,
            processed_signal_length=lengths,
            cache_last_channel=channel,
            cache_last_time=time,
            cache_last_channel_len=channel_len,
            keep_all_outputs=last,
            previous_hypotheses=previous,
            previous_pred_out=pred_out,
            drop_extra_pre_encoded=drop_extra(model, step),
            return_transcription=True,
        )
        pred_out, texts, channel, time, channel_len, previous = result
        steps.append(
            {
                "chunk_frames": int(chunk.shape[-1]),
                "chunk_length": int(lengths[0]),
                "encoded_frames": int(encoded_len[0]),
                "cache_last_channel_len": int(channel_len[0]),
            }
        )
        if head == "rnnt":
            ids_after_step.append(base.to_jsonable(previous[0].y_sequence))
    out: dict[str, Any] = {"steps": steps, "encoded": np.concatenate(encoded_steps)}
    if head == "rnnt":
        hyp = previous[0]
        out.update(
            ids=ids_after_step[-1],
            ids_after_step=ids_after_step,
            text=hyp.text,
            frames=base.to_jsonable(hyp.timestamp),
        )
    else:
        alignment = base.to_jsonable(pred_out[0])
        ids, spans = base.ctc_collapse(alignment, blank=model.tokenizer.vocab_size)
        text = texts[0].text if hasattr(texts[0], "text") else texts[0]
        assert model.ctc_decoding.decode_tokens_to_str_with_strip_punctuation(ids) == text
        out.update(alignment=alignment, ids=ids, spans=spans, text=text)
    return out


def buffer_features(model: ASRModel, signal: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The streaming buffer's whole-utterance features (1, F, T) and their length."""
    buffer = CacheAwareStreamingAudioBuffer(model=model, online_normalization=False)
    buffer.append_audio(signal, stream_id=-1)
    return buffer.get_all_audios()


@torch.no_grad()
def offline(model: ASRModel, signal: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """The example's `compare_vs_offline` pass: the whole buffer, no caches, every head."""
    features, length = buffer_features(model, signal)
    encoded, encoded_len = model.encoder(audio_signal=features, length=length)
    # the language prompt (`set_inference_prompt`) as `conformer_stream_step` applies it
    # (a no-op for models without one); the npz keeps the encoder's own output
    prompted = model._apply_prompt_to_encoded(encoded)
    t_enc = int(encoded_len[0])
    set_head(model, "rnnt")
    (hyp,) = model.decoding.rnnt_decoder_predictions_tensor(
        prompted, encoded_len, return_hypotheses=True
    )
    result = {
        "feature_frames": int(features.shape[-1]),
        "feature_length": int(length[0]),
        "encoded_length": t_enc,
        "rnnt": {"ids": base.to_jsonable(hyp.y_sequence), "text": hyp.text},
    }
    if hyp.token_duration is not None and len(hyp.token_duration):  # TDT, where kept
        result["rnnt"]["durations"] = base.to_jsonable(hyp.token_duration)
    if "ctc" in heads(model):
        log_probs = model.ctc_decoder(encoder_output=prompted)
        alignment = base.to_jsonable(log_probs[0, :t_enc].argmax(-1))
        ids, _ = base.ctc_collapse(alignment, blank=model.tokenizer.vocab_size)
        result["ctc"] = {"alignment": alignment, "ids": ids}
    return features[0].T.numpy(), encoded[0, :, :t_enc].T.numpy(), result


def no_timestamps(model: ASRModel) -> None:
    hybrid = isinstance(model, EncDecHybridRNNTCTCBPEModel)
    sections = (("ctc", model.cfg.aux_ctc.decoding),) if hybrid else ()
    for head, cfg in (*sections, ("rnnt", model.cfg.decoding)):
        cfg = base.with_timestamps(cfg)
        with open_dict(cfg):
            cfg.compute_timestamps = False
        model.change_decoding_strategy(
            cfg, verbose=False, **({"decoder_type": head} if hybrid else {})
        )


def streaming_cfg(model: ASRModel) -> dict[str, Any]:
    cfg = model.encoder.streaming_cfg
    keys = ("chunk_size", "shift_size", "cache_drop_size", "last_channel_cache_size",
            "valid_out_len", "pre_encode_cache_size", "drop_extra_pre_encoded")  # fmt: skip
    return {k: base.to_jsonable(getattr(cfg, k)) for k in keys}


def references(
    model: ASRModel, signals: dict[str, np.ndarray], contexts: list[list[int]] = CONTEXTS
) -> tuple[dict, dict]:
    """Per lookahead and clip, NeMo's streaming and offline outputs: (npz arrays, JSON)."""
    arrays: dict[str, np.ndarray] = {}
    per_context: dict[str, Any] = {}
    agree = True
    for context in contexts:
        key = f"{context[0]}_{context[1]}"
        model.encoder.set_default_att_context_size(context)
        clips: dict[str, Any] = {}
        for clip, x in signals.items():
            stem = Path(clip).stem
            features, off_encoded, off = offline(model, x)
            arrays[f"{stem}/features"] = features
            arrays[f"{key}/{stem}/offline_encoder"] = off_encoded
            outs = {head: stream(model, x, head) for head in heads(model)}
            arrays[f"{key}/{stem}/encoder"] = outs["rnnt"]["encoded"]
            steps = outs["rnnt"]["steps"]
            for out in outs.values():
                out.pop("encoded")
                assert out.pop("steps") == steps
            same = outs["rnnt"]["ids"] == off["rnnt"]["ids"]
            if "ctc" in outs:
                same = same and outs["ctc"]["alignment"] == off["ctc"]["alignment"]
            agree = agree and same
            clips[clip] = {
                "num_samples": len(x),
                "steps": steps,
                **outs,
                "offline": off,
                "streaming_equals_offline": same,
            }
        per_context[key] = {
            "att_context_size": context,
            "streaming_cfg": streaming_cfg(model),
            "clips": clips,
        }
    model.encoder.set_default_att_context_size(contexts[0])
    return arrays, {"contexts": per_context, "streaming_equals_offline": agree}


def main() -> None:
    torch.manual_seed(base.SEED)
    np.random.seed(base.SEED)  # noqa: NPY002
    signals = {clip: base.load_clip(clip) for clip in base.CLIPS}
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = base.train_tokenizer(Path(tmp) / "tokenizer")
        spec = base.ModelSpec(EncDecHybridRNNTCTCBPEModel, model_config(tokenizer), BLANK_SHARE)
        model, chosen = base.build_model(spec, [signals[c] for c in base.SPEECH_CLIPS])
        staging = Path(tmp) / "out"
        staging.mkdir()
        path = staging / f"{NAME}.nemo"
        model.save_to(str(path))
        restored = ASRModel.restore_from(str(path), map_location="cpu").eval()
        config = OmegaConf.to_container(restored.cfg, resolve=True, enum_to_str=True)
        base.enable_timestamps(restored)
        # greedy decisions offline with the default (first) lookahead vary with the audio
        arrays0, clips0 = base.clip_references(restored, signals)
        stats = base.decision_stats(clips0, arrays0, blank=restored.tokenizer.vocab_size)
        base.check_varied(stats)
        # NeMo's streaming merges partial hypotheses with list timestamps: timestamps off
        no_timestamps(restored)
        arrays, meta = references(restored, signals)
        meta = {
            **base.made_by(COMMAND),
            "tokenizer_model_sha256": base.file_sha256(Path(tokenizer["dir"]) / "tokenizer.model"),
            "model_class": f"{type(restored).__module__}.{type(restored).__name__}",
            "decoding_strategy": base.STRATEGY,
            "max_symbols": base.MAX_SYMBOLS,
            "weight_choices": chosen,
            "stats": stats,
            "config": config,
            **meta,
        }
        size = path.stat().st_size / 1e6
        print(f"{NAME}: {size:.2f} MB .nemo; stats {json.dumps(stats)}")
        print(f"  streaming equals offline: {meta['streaming_equals_offline']}")
        for key, entry in meta["contexts"].items():
            print(f"  {key}: {entry['streaming_cfg']}")
            for clip, c in entry["clips"].items():
                print(f"    {clip}: {len(c['steps'])} steps, rnnt {len(c['rnnt']['ids'])} "
                      f"ctc {len(c['ctc']['ids'])} tokens, = offline {c['streaming_equals_offline']}")  # fmt: skip
        assert size < 3.0, size
        np.savez_compressed(staging / f"{NAME}.npz", **arrays)
        (staging / f"{NAME}.json").write_text(json.dumps(base.to_jsonable(meta), indent=1) + "\n")
        base.OUT.mkdir(parents=True, exist_ok=True)
        for p in sorted(staging.iterdir()):
            shutil.copyfile(p, base.OUT / p.name)
            print(f"wrote {base.OUT / p.name} ({p.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
