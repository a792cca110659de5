"""NeMo's multitalker ASR (`EncDecMultiTalkerRNNTBPEModel`, speaker kernels) on a tiny model
configured as NVIDIA's multitalker-parakeet-streaming-0.6b-v1, and NeMo's per-speaker outputs.

Needs the `reference` dependency group (nemo_toolkit[asr]==3.0.0 and torch). From the
repository root:

    python tests/reference/make_multitalker_fixture.py

The checkpoint. multitalker-parakeet-streaming-0.6b-v1's complete config is not published
outside its `.nemo`; its model card (huggingface.co/nvidia/multitalker-parakeet-streaming-0.6b-v1,
README.md) says it is nemotron-speech-streaming-en-0.6b fine-tuned with speaker kernels
"injected into the pre-encode layer" (before encoder layer 0), deployed one instance per
speaker, streaming with att_context_size [70, 13] / [70, 6] / [70, 1] / [70, 0]. So the
model here is the committed nemotron-speech-streaming-en-0.6b fixture
(`tests/fixtures/checkpoints/nemotron-speech-streaming-en-0.6b.nemo`, made by
make_streaming_checkpoint_fixtures.py from that checkpoint's config with sizes shrunk and
decisions made to depend on the audio), restored as NeMo's `EncDecMultiTalkerRNNTBPEModel`
with the card's kernels: `spk_kernel_type: ff` (NeMo's only type), `spk_kernel_layers: [0]`,
`add_bg_spk_kernel: true` (NeMo's default). Its kernels are NeMo's random initialisation
(seed `SEED`), the biases scaled by `BIAS_SCALE` and the last Linear by a gain that makes
the kernel's output `KERNEL_SHARE` of the spread of layer 0's input on the clip (recorded
as `kernel_gains`), so that the speakers' transcripts differ (asserted).

Speaker activity. `activity(frames)`: four speakers' probabilities per encoder frame (as
Sortformer gives them), soft values, speakers 0 and 1 taking turns with an overlap, speaker
2 briefly active, speaker 3 never above 0.5.

Recorded, for the `long` clip of the streaming fixtures (10.2 s, three test clips end to end):
- `offline[<speaker>]`: NeMo's forward with `set_speaker_targets(active, background)`, the
  target speaker's probabilities and the others' `(p > 0.5).any()` (NeMo's parallel
  streaming rule, `get_active_speakers_info`), then greedy decoding (`_transcribe_forward`
  with these targets): ids and frames;
- `no_targets`: the same forward after `clear_speaker_targets()` (what `transcribe()` runs:
  the dataset's inference mode gives no targets; the layer-0 kernel still runs);
- `streaming[<left>_<right>][<speaker>]`: NeMo's `SpeakerTaggedASR.perform_parallel_streaming_stt_spk`
  (the model card's method 1) with the activity as `diar_model.rttms_mask_mats` (given
  targets), `masked_asr: false` (the speaker kernels), `cache_gating: false` (every speaker
  every chunk), `binary_diar_preds: false`, `single_speaker_mode: false`; the diarization
  model object it needs for its state is the committed diar_streaming_sortformer_4spk-v2
  fixture, whose predictions are not used. Final ids, frames and text per speaker, per
  lookahead, and the seglst it writes;
- `streaming_gated[<left>_<right>]`: the same with `cache_gating: true` and
  `cache_gating_buffer_size: 2` (the defaults of NeMo's `MultitalkerTranscriptionConfig`,
  the card's example configuration): a speaker's instance runs a chunk only when the
  speaker is above 0.5 in the last two chunks (speaker 3 never is; 0 stops, 2 comes and
  goes).

Writes tests/fixtures/checkpoints/multitalker-parakeet-streaming-0.6b-v1.{nemo,json}.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import nemo
import numpy as np
import torch
from nemo.collections.asr.models import (
    ASRModel,
    EncDecMultiTalkerRNNTBPEModel,
    SortformerEncLabelModel,
)
from nemo.collections.asr.parts.utils.multispk_transcribe_utils import SpeakerTaggedASR
from nemo.collections.asr.parts.utils.streaming_utils import CacheAwareStreamingAudioBuffer
from omegaconf import OmegaConf, open_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_model_fixtures as base
import make_streaming_checkpoint_fixtures as checkpoints

COMMAND = "python tests/reference/make_multitalker_fixture.py"
NAME = "multitalker-parakeet-streaming-0.6b-v1"
OUT = base.ROOT / "tests" / "fixtures" / "checkpoints"
BASE_FIXTURE = OUT / "nemotron-speech-streaming-en-0.6b.nemo"
DIAR_FIXTURE = OUT / "diar_streaming_sortformer_4spk-v2.nemo"
CLASS = "nemo.collections.asr.models.multitalker_asr_models.EncDecMultiTalkerRNNTBPEModel"
KERNELS = {"spk_kernel_type": "ff", "spk_kernel_layers": [0], "add_bg_spk_kernel": True}
SEED = base.SEED
# NeMo's random kernels add a near-constant (their biases) many times the size of layer 0's
# input, which silences the tuned model; so their biases are scaled by BIAS_SCALE and their
# output (last Linear) to KERNEL_SHARE x the spread of layer 0's input on the clip.
KERNEL_SHARE = 0.3
BIAS_SCALE = 0.05
CLIP = "long"
SPEAKERS = 4
STREAM_CFG = {  # MultitalkerTranscriptionConfig's fields SpeakerTaggedASR reads, as chosen here
    "fix_prev_words_count": 5,
    "update_prev_words_sentence": 5,
    "ignored_initial_frame_steps": 5,
    "binary_diar_preds": False,
    "batch_size": 1,
    "max_num_of_spks": SPEAKERS,
    "masked_asr": False,
    "mask_preencode": False,
    "cache_gating": False,  # both are recorded (`streaming`, `streaming_gated`)
    "cache_gating_buffer_size": 2,
    "single_speaker_mode": False,
    "sent_break_sec": 30.0,
    "generate_realtime_scripts": False,
    "deploy_mode": False,
    "log": False,
}


def activity(frames: int) -> np.ndarray:
    """(frames, 4) speaker probabilities: 0 then 1 (overlapping), 2 briefly, 3 silent."""
    t = np.arange(frames)
    act = np.zeros((frames, SPEAKERS), dtype=np.float32)
    act[:, 0] = np.where(t < frames * 0.55, 0.9, 0.1)
    act[:, 1] = np.where(t >= frames * 0.4, 0.85, 0.05)
    act[:, 2] = np.where((t >= frames * 0.15) & (t < frames * 0.3), 0.6, 0.0)
    act[:, 3] = 0.02
    return act


def targets(act: np.ndarray, speaker: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The target speaker's probabilities and the others' union above 0.5, (1, T) each."""
    others = [i for i in range(act.shape[1]) if i != speaker]
    background = (act[:, others] > 0.5).any(-1).astype(np.float32)
    return torch.from_numpy(act[None, :, speaker]), torch.from_numpy(background[None])


def layer0_input(model: EncDecMultiTalkerRNNTBPEModel, signal: np.ndarray) -> torch.Tensor:
    """What encoder layer 0 receives for `signal` (the kernels' input), kernels off."""
    captured: dict[str, torch.Tensor] = {}

    def capture(module, args, kwargs):
        captured["x"] = kwargs["x"].detach().clone()

    model._cleanup_speaker_kernel_hooks()
    hook = model.encoder.layers[0].register_forward_pre_hook(capture, with_kwargs=True)
    with torch.no_grad():
        model.forward(input_signal=torch.from_numpy(signal[None]),
                      input_signal_length=torch.tensor([len(signal)]))  # fmt: skip
    hook.remove()
    model._attach_spk_kernel_hooks()
    return captured["x"]


def build(signal: np.ndarray) -> tuple[EncDecMultiTalkerRNNTBPEModel, dict[str, float]]:
    """The base fixture as NeMo's multitalker class; kernels scaled (`KERNEL_SHARE`)."""
    cfg = ASRModel.restore_from(str(BASE_FIXTURE), return_config=True, map_location="cpu")
    with open_dict(cfg):
        cfg.target = CLASS
        for key, value in KERNELS.items():
            cfg[key] = value
    torch.manual_seed(SEED)
    model = ASRModel.restore_from(
        str(BASE_FIXTURE), override_config_path=cfg, map_location="cpu", strict=False
    )
    assert isinstance(model, EncDecMultiTalkerRNNTBPEModel), type(model)
    model.eval()
    x = layer0_input(model, signal)
    gains = {}
    with torch.no_grad():
        for name, kernels in (("spk", model.spk_kernels), ("bg_spk", model.bg_spk_kernels)):
            kernel = kernels["0"]
            kernel[0].bias.mul_(BIAS_SCALE)
            kernel[3].bias.mul_(BIAS_SCALE)
            gain = KERNEL_SHARE * float(x.std()) / float(kernel(x).std())
            kernel[3].weight.mul_(gain)
            kernel[3].bias.mul_(gain)
            gains[name] = gain
    return model, gains


@torch.no_grad()
def offline(
    model: EncDecMultiTalkerRNNTBPEModel, signal: np.ndarray, act: np.ndarray | None, speaker: int
):
    if act is None:
        model.clear_speaker_targets()
    else:
        model.set_speaker_targets(*targets(act, speaker))
    audio = torch.from_numpy(signal[None])
    encoded, encoded_len = model.forward(
        input_signal=audio, input_signal_length=torch.tensor([len(signal)])
    )
    (hyp,) = model.decoding.rnnt_decoder_predictions_tensor(
        encoded, encoded_len, return_hypotheses=True
    )
    model.clear_speaker_targets()
    return {"ids": base.to_jsonable(hyp.y_sequence), "frames": base.to_jsonable(hyp.timestamp),
            "text": hyp.text, "encoded_frames": int(encoded_len[0])}  # fmt: skip


@torch.no_grad()
def streaming(
    model, diar_model, signal: np.ndarray, act: np.ndarray, context: list[int], gating: bool
) -> dict:
    model.encoder.set_default_att_context_size(context)
    cfg = OmegaConf.create({**STREAM_CFG, "att_context_size": context, "audio_file": "clip.wav",
                            "manifest_file": None, "cache_gating": gating})  # fmt: skip
    diar_model.rttms_mask_mats = torch.from_numpy(act[None])
    streamer = SpeakerTaggedASR(cfg, model, diar_model)
    buffer = CacheAwareStreamingAudioBuffer(model=model, online_normalization=False,
                                            pad_and_drop_preencoded=False)  # fmt: skip
    buffer.append_audio(signal, stream_id=-1)
    steps = 0
    for step, (chunk_audio, chunk_lengths) in enumerate(iter(buffer)):
        drop = 0 if step == 0 else model.encoder.streaming_cfg.drop_extra_pre_encoded
        streamer.perform_parallel_streaming_stt_spk(
            step_num=step, chunk_audio=chunk_audio, chunk_lengths=chunk_lengths,
            is_buffer_empty=buffer.is_buffer_empty(), drop_extra_pre_encoded=drop,
        )  # fmt: skip
        steps += 1
    state = streamer.instance_manager.batch_asr_states[0]
    speakers = {}
    for speaker in state.get_speakers():
        hyp = state.previous_hypothesis[speaker]
        if hyp is None:  # an instance added for a higher speaker's index, never run
            speakers[str(speaker)] = {"ids": [], "frames": [], "text": ""}
            continue
        speakers[str(speaker)] = {"ids": base.to_jsonable(hyp.y_sequence),
                                  "frames": base.to_jsonable(hyp.timestamp), "text": hyp.text}  # fmt: skip
    return {"steps": steps, "speakers": speakers, "seglst": base.to_jsonable(state.seglsts)}


def main() -> None:
    signal = checkpoints.load_clips()[CLIP]
    model, gains = build(signal)
    diar_model = SortformerEncLabelModel.restore_from(str(DIAR_FIXTURE), map_location="cpu").eval()
    contexts = checkpoints.contexts_of(OmegaConf.to_container(model.cfg, resolve=True))
    model.encoder.set_default_att_context_size(contexts[0])
    frames = offline(model, signal, None, 0)["encoded_frames"]
    act = activity(frames)
    record: dict[str, Any] = {
        "generated_by": COMMAND,
        "nemo_version": nemo.__version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "checkpoint": NAME,
        "model_class": CLASS,
        "base_fixture": BASE_FIXTURE.name,
        "config_sources": {
            "*": f"tests/fixtures/checkpoints/{BASE_FIXTURE.name} (its json says how it was made)",
            "target, spk_kernel_*": "huggingface.co/nvidia/multitalker-parakeet-streaming-0.6b-v1 "
            "README.md: fine-tuned from nemotron-speech-streaming-en-0.6b, speaker kernels "
            "injected into the pre-encode layer; NeMo 3.0.0 SpeakerKernelMixin defaults",
        },
        "kernels": KERNELS,
        "kernel_share": KERNEL_SHARE,
        "bias_scale": BIAS_SCALE,
        "kernel_gains": gains,
        "seed": SEED,
        "clip": {
            "name": CLIP,
            "pieces": [list(p) for p in checkpoints.CLIPS[CLIP]],
            "num_samples": len(signal),
        },
        "activity": act.tolist(),
        "stream_config": STREAM_CFG,
        "no_targets": offline(model, signal, None, 0),
        "offline": {str(s): offline(model, signal, act, s) for s in range(SPEAKERS)},
        "streaming": {
            f"{c[0]}_{c[1]}": streaming(model, diar_model, signal, act, c, False) for c in contexts
        },
        "streaming_gated": {
            f"{c[0]}_{c[1]}": streaming(model, diar_model, signal, act, c, True) for c in contexts
        },
    }
    model.encoder.set_default_att_context_size(contexts[0])
    for s, out in record["offline"].items():
        print(s, "offline", out["ids"], len(out["ids"]))
    print("none", record["no_targets"]["ids"])
    for key, run in (*record["streaming"].items(), *record["streaming_gated"].items()):
        print(key, {s: v["ids"] for s, v in run["speakers"].items()})
    ids = [tuple(v["ids"]) for v in record["offline"].values()]
    assert len(set(ids)) == SPEAKERS, "every speaker's transcript should differ"
    assert tuple(record["no_targets"]["ids"]) not in ids
    for key, run in record["streaming"].items():
        assert len({tuple(v["ids"]) for v in run["speakers"].values()}) > 1, key
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{NAME}.nemo"
        model.save_to(str(path))
        restored = ASRModel.restore_from(str(path), map_location="cpu").eval()
        restored.encoder.set_default_att_context_size(contexts[0])
        assert offline(restored, signal, act, 1) == record["offline"]["1"]
        record["config"] = OmegaConf.to_container(restored.cfg, resolve=True)
        (OUT / f"{NAME}.nemo").write_bytes(path.read_bytes())
    (OUT / f"{NAME}.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
