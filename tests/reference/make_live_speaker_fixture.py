"""NeMo reference for live speaker labels: NeMo's speaker-tagged streaming ASR (serial).

    python tests/reference/make_live_speaker_fixture.py

NeMo's live path for speaker-tagged transcription is `SpeakerTaggedASR.perform_serial_streaming_stt_spk`
(nemo/collections/asr/parts/utils/multispk_transcribe_utils.py), driven as NeMo's
`examples/asr/asr_cache_aware_streaming/speech_to_text_multitalker_streaming_infer.py`
(`launch_serial_streaming`, `parallel_speaker_strategy=False`) drives it: a
`CacheAwareStreamingAudioBuffer` over the ASR model cuts the ASR's features into its
cache-aware chunks; each chunk goes through the ASR (`conformer_stream_step`) and, the same
features, through the streaming Sortformer's `forward_streaming_step` (speaker cache and FIFO
carried across chunks, `drop_extra_pre_encoded` as the ASR's, no left/right context); each
new word of the hypothesis gets a speaker from the probabilities so far
(`get_frame_and_words_online`).

Models: the committed NeMo-made fixture `checkpoints/nemotron-speech-streaming-en-0.6b.nemo`
(cache-aware RNNT, 128 features; tests/reference/make_streaming_checkpoint_fixtures.py),
restored unchanged, its decoding set as the example sets it (greedy, max_symbols 10); and
`diarization/live_sortformer.nemo`, made here: the committed streaming Sortformer fixture
(`checkpoints/diar_streaming_sortformer_4spk-v2.nemo`, tests/reference/make_sortformer_fixtures.py,
diar_streaming_sortformer_4spk-v2's recipe with sizes shrunk) with the speaker-cache settings
`SORTFORMER` in its config (the shrunk cache, compressed several times on the clip) and its
head's last layer re-tuned for the live path (below), saved with `save_to`. `STREAM_CFG`
holds the example's defaults of the fields SpeakerTaggedASR reads.

Tuning: the live path feeds the Sortformer the ASR's features, not normalised (the recipe
normalises `per_feature` over the recording), and the committed fixture's head, tuned on
normalised features, then gives one speaker everywhere. So `single_hidden_to_spks` is
rescaled and offset as make_sortformer_fixtures.py tunes it (its `ACTIVE_SHARE`,
`LOGIT_SPREAD`), from the head's logits on the live run's chunks (both contexts); the script
asserts that every speaker is active on some frames and that words get several speakers.

Recorded per ASR context (`contexts`): each step's chunk length and drop, the hypothesis text
and token frames, the Sortformer's probabilities of every frame (npz `<context>/preds`), and
the final words with their speakers and frames; once: the buffer's features (npz `features`).
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

import nemo
import numpy as np
import torch
from nemo.collections.asr.models import ASRModel, SortformerEncLabelModel
from nemo.collections.asr.parts.utils.multispk_transcribe_utils import SpeakerTaggedASR
from nemo.collections.asr.parts.utils.streaming_utils import CacheAwareStreamingAudioBuffer
from omegaconf import OmegaConf, open_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_model_fixtures as base
import make_sortformer_fixtures as sortformers
import make_streaming_checkpoint_fixtures as checkpoints

COMMAND = "python tests/reference/make_live_speaker_fixture.py"
CHECKPOINTS = base.ROOT / "tests" / "fixtures" / "checkpoints"
ASR_FIXTURE = CHECKPOINTS / "nemotron-speech-streaming-en-0.6b.nemo"
DIAR_FIXTURE = CHECKPOINTS / "diar_streaming_sortformer_4spk-v2.nemo"
OUT = base.ROOT / "tests" / "fixtures" / "diarization"
NAME = "live_speakers"
LIVE_DIAR = OUT / "live_sortformer.nemo"
CLIP = "long"  # make_streaming_checkpoint_fixtures' clip: speech, silence, speech
CONTEXTS = [[70, 13], [70, 1]]  # the ASR's first and third att_context_size
SORTFORMER = {"spkcache_len": 16, "fifo_len": 8, "spkcache_update_period": 6}
STREAM_CFG = {  # the example's MultitalkerTranscriptionConfig defaults that serial streaming reads
    "fix_prev_words_count": 5,
    "update_prev_words_sentence": 5,
    "ignored_initial_frame_steps": 5,
    "word_window": 50,
    "left_frame_shift": -1,
    "right_frame_shift": 0,
    "min_sigmoid_val": 1e-2,
    "binary_diar_preds": False,
    "batch_size": 1,
    "max_num_of_spks": 4,
    "masked_asr": True,
    "mask_preencode": False,
    "cache_gating": True,
    "cache_gating_buffer_size": 2,
    "single_speaker_mode": False,
    "sent_break_sec": 30.0,
    "generate_realtime_scripts": False,
    "deploy_mode": True,  # one session, no manifest
    "verbose": False,
    "log": False,
}


def set_greedy(model: ASRModel) -> None:
    """The example's decoding: greedy, no alignments, max_symbols 10, fused batch off."""
    cfg = model.cfg.decoding
    with open_dict(cfg):
        cfg.strategy = "greedy"
        cfg.preserve_alignments = False
        cfg.greedy.max_symbols = 10
        cfg.fused_batch_size = -1
    model.change_decoding_strategy(cfg, verbose=False)


@torch.no_grad()
def serial(
    asr: ASRModel, diar: SortformerEncLabelModel, signal: np.ndarray, context: list[int]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """`launch_serial_streaming` over `signal` with one ASR context; what it decided."""
    asr.encoder.set_default_att_context_size(context)
    cfg = OmegaConf.create({**STREAM_CFG, "att_context_size": context})
    streamer = SpeakerTaggedASR(cfg, asr, diar)
    buffer = CacheAwareStreamingAudioBuffer(model=asr, online_normalization=False,
                                            pad_and_drop_preencoded=False)  # fmt: skip
    buffer.append_audio(signal, stream_id=-1)
    steps = []
    for step, (chunk_audio, chunk_lengths) in enumerate(iter(buffer)):
        drop = 0 if step == 0 else asr.encoder.streaming_cfg.drop_extra_pre_encoded
        streamer.perform_serial_streaming_stt_spk(
            step_num=step, chunk_audio=chunk_audio, chunk_lengths=chunk_lengths,
            is_buffer_empty=buffer.is_buffer_empty(), drop_extra_pre_encoded=drop,
        )  # fmt: skip
        hyp = streamer.instance_manager.batch_asr_states[0].previous_hypothesis[0]
        steps.append({
            "chunk_frames": int(chunk_audio.shape[-1]), "chunk_length": int(chunk_lengths[0]),
            "chunk_sum": float(chunk_audio.double().sum()), "drop": drop,
            "text": hyp.text, "timestamp": base.to_jsonable(hyp.timestamp),
            "preds_frames": int(streamer.instance_manager.diar_states.diar_pred_out_stream.shape[1]),
        })  # fmt: skip
    session = streamer._word_and_ts_seq["streaming_session"]
    words = [
        {k: w[k] for k in ("word", "frame_stt", "frame_end", "start_time", "end_time", "speaker")}
        for w in session["words"]
    ]
    hyp = streamer.instance_manager.batch_asr_states[0].previous_hypothesis[0]
    preds = streamer.instance_manager.diar_states.diar_pred_out_stream[0].numpy().copy()
    streaming_cfg = asr.encoder.streaming_cfg
    record = {
        "steps": steps,
        "chunk_size": base.to_jsonable(streaming_cfg.chunk_size),
        "shift_size": base.to_jsonable(streaming_cfg.shift_size),
        "pre_encode_cache_size": base.to_jsonable(streaming_cfg.pre_encode_cache_size),
        "valid_out_len": int(streaming_cfg.valid_out_len),
        "ids": base.to_jsonable(hyp.y_sequence),
        "text": hyp.text,
        "words": words,
        "speakers": sorted({w["speaker"] for w in words}),
        "preds_frames": int(preds.shape[0]),
        "active_share": (preds > 0.5).mean(axis=0).round(3).tolist(),
    }
    return record, {f"{context[0]}_{context[1]}/preds": preds}


def live_sortformer(asr: ASRModel, signal: np.ndarray) -> tuple[SortformerEncLabelModel, dict]:
    """The committed streaming Sortformer with `SORTFORMER` in its config and its head tuned
    on the live run's logits; saved to LIVE_DIAR and restored from it."""
    diar = SortformerEncLabelModel.restore_from(str(DIAR_FIXTURE), map_location="cpu").eval()
    with open_dict(diar.cfg):
        diar.cfg.sortformer_modules.update(SORTFORMER)
    for key, value in SORTFORMER.items():
        setattr(diar.sortformer_modules, key, value)
    layer = diar.sortformer_modules.single_hidden_to_spks
    logits: list[np.ndarray] = []
    hook = layer.register_forward_hook(lambda _m, _i, out: logits.append(out[0].numpy().copy()))
    try:
        for context in CONTEXTS:
            serial(asr, diar, signal, context)
    finally:
        hook.remove()
    every = np.concatenate(logits).astype(np.float64)
    centre = np.array(
        [np.quantile(every[:, k], 1 - s) for k, s in enumerate(sortformers.ACTIVE_SHARE)]
    )
    scale = sortformers.LOGIT_SPREAD / float(np.std(every - centre))
    with torch.no_grad():
        layer.weight.mul_(scale)
        layer.bias.copy_(scale * (layer.bias - torch.from_numpy(centre).float()))
    diar.save_to(str(LIVE_DIAR))
    diar = SortformerEncLabelModel.restore_from(str(LIVE_DIAR), map_location="cpu").eval()
    return diar, {"centre": centre.tolist(), "scale": scale}


def buffer_features(asr: ASRModel, signal: np.ndarray) -> np.ndarray:
    """The features the buffer cuts its chunks from: (frames, features)."""
    buffer = CacheAwareStreamingAudioBuffer(model=asr, online_normalization=False,
                                            pad_and_drop_preencoded=False)  # fmt: skip
    buffer.append_audio(signal, stream_id=-1)
    return buffer.buffer[0].numpy().T.copy()


def main() -> None:
    torch.manual_seed(base.SEED)
    signal = checkpoints.load_clips()[CLIP]
    asr = ASRModel.restore_from(str(ASR_FIXTURE), map_location="cpu").eval()
    set_greedy(asr)
    diar, tuning = live_sortformer(asr, signal)
    assert all(getattr(diar.sortformer_modules, k) == v for k, v in SORTFORMER.items())
    arrays: dict[str, np.ndarray] = {"features": buffer_features(asr, signal)}
    record: dict[str, Any] = {
        "generated_by": COMMAND,
        "nemo_version": nemo.__version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "asr_fixture": f"tests/fixtures/checkpoints/{ASR_FIXTURE.name}",
        "diar_fixture": f"tests/fixtures/diarization/{LIVE_DIAR.name}",
        "diar_made_from": f"tests/fixtures/checkpoints/{DIAR_FIXTURE.name}",
        "head_tuning": tuning,
        "nemo_path": "SpeakerTaggedASR.perform_serial_streaming_stt_spk, driven as "
        "speech_to_text_multitalker_streaming_infer.launch_serial_streaming",
        "decoding": "greedy, max_symbols 10 (the example's)",
        "sortformer_modules": SORTFORMER,
        "stream_cfg": STREAM_CFG,
        "clip": {"pieces": [list(p) for p in checkpoints.CLIPS[CLIP]], "num_samples": len(signal)},
        "contexts": {},
    }
    for context in CONTEXTS:
        result, preds = serial(asr, diar, signal, context)
        print(context, result["text"][:80], result["speakers"], result["active_share"], flush=True)
        assert all(0.02 < share < 0.98 for share in result["active_share"]), result
        assert len(result["speakers"]) > 1, result
        record["contexts"][f"{context[0]}_{context[1]}"] = result
        arrays.update(preds)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / f"{NAME}.npz", **arrays)
    (OUT / f"{NAME}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(NAME, "->", OUT, f"{(OUT / f'{NAME}.npz').stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
