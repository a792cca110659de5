"""Streaming latency and real-time factor per chunk size, on the CPU.

Needs MLX, this workspace and (once, to build the models) the `reference` group:

    python benchmarks/streaming.py                # every model, every setting
    python benchmarks/streaming.py --models cache-aware --repeats 1
    python benchmarks/streaming.py --models prompt --language de-DE

Models (random weights, built once with NeMo into the git-ignored `.benchmarks-cache/`, joint
scaled so that greedy decoding emits a token every few frames as on speech):
- `cache-aware`: an EncDecHybridRNNTCTCBPEModel of the geometry of NVIDIA's
  stt_en_fastconformer_hybrid_large_streaming_multi (17 layers, d_model 512, causal 8x
  dw_striding, chunked_limited attention [[70, 13], [70, 6], [70, 1], [70, 0]], causal
  convolutions, `normalize: NA`): NeMo's exact cache-aware step, one row per lookahead;
- `prompt`: an EncDecRNNTBPEModelWithPrompt of the geometry of NVIDIA's
  nemotron-3.5-asr-streaming-0.6b (24 layers, d_model 1024, 128 mels, no biases, causal 8x
  dw_striding, chunked_limited [[56, 3], [56, 0], [56, 6], [56, 13]], 2 LSTM layers, the
  language projection and prompt dictionary of its config; a vocabulary of 1024 instead of
  13087): NeMo's exact cache-aware step conditioned on `--language` (default `auto`), one row
  per lookahead;
- `offline`: parakeet-tdt-0.6b's geometry (24 layers, d_model 1024) with limited-context
  streaming: one row per (chunk, left, right) setting;
- `eou`: an EncDecRNNTBPEEOUModel of the geometry of NVIDIA's parakeet_realtime_eou_120m-v1
  (the recipe of tests/reference/configs/parakeet_realtime_eou_120m-v1.yaml at full size: 17
  layers, d_model 512, 128 mels, [70, 1], 1024 pieces + `<EOU>` + `<EOB>`), its `<EOU>`
  output raised so that it is emitted about once per 2 s; its own table (below).

Audio: espeak-ng speech synthesised word by word, so that each word's end time is known (the
last sample above 1% of the word's peak), with pauses of 0.1-0.4 s between words.

Timing: audio is fed in 0.1 s pieces on a simulated real-time clock: piece k arrives when
its last sample has been spoken; its processing starts then, or when the previous piece's
processing ended if that is later, and takes the measured wall time. For each word, the
latency is the time from the word's end to the end of the processing after which the
encoder frame holding the word's end has been decoded: `final` for good, `first` at least
as the tentative tail. (With trained weights a word's token comes out on its own frames, so
this is when its token appears; random weights cannot show the token itself.) RTF is
processing time / audio time; below 1 keeps up with real time. `vs offline`: the edit
distance between the streamed token ids and those of offline decoding of the whole file
with the same model (for the cache-aware model, offline with the same attention context).
`--encoder-steps` times `mlx_conformer`'s cache-aware step alone, per lookahead.

The `eou` model gets the word speech with 1 s of silence after every 8th word (utterances),
and a table of its own: `utterance end -> event` is the time from an utterance's last word
end to the end of the processing after which the encoder frame holding that end (the frame
a trained model marks at the earliest) is final, i.e. the soonest an `EndOfUtterance` event
can reach the caller (random weights do not mark utterance ends: what the trained model adds
on top is its own decision delay, 160 ms median per NVIDIA's card); `marker frame -> event`
is, for every `<EOU>` the random model does emit, the time from the end of the audio of the
frame it marks to the event's delivery (the update that carries it).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import CACHE, SAMPLE_RATE, WORDS, build_tdt, read_wav

SPEECH = CACHE / "streaming-words.wav"
TIMES = CACHE / "streaming-words.json"
MODELS = {
    "cache-aware": CACHE / "fastconformer-hybrid-large-streaming.nemo",
    "prompt": CACHE / "nemotron-3.5-asr-streaming-geometry.nemo",
    "offline": CACHE / "tdt-0.6b-speechlike.nemo",
    "eou": CACHE / "parakeet-realtime-eou-120m.nemo",
}
UTTERANCE_WORDS, UTTERANCE_GAP = 8, 1.0  # the eou model's speech: utterances of 8 words
CACHE_AWARE = ("cache-aware", "prompt", "eou")  # streamed in their trained lookaheads
PROMPT_CONFIG = (
    Path(__file__).resolve().parents[1]
    / "tests"
    / "reference"
    / "configs"
    / ("nemotron-3.5-asr-streaming-0.6b.yaml")
)
# (chunk seconds, left frames, right frames) for the offline model
OFFLINE_SETTINGS = [(0.48, 50, 6), (0.96, 50, 12), (1.92, 50, 12), (0.96, 125, 13)]
PIECE = 0.1


def word_speech(count: int = 80) -> tuple[np.ndarray, list[float]]:
    """Words synthesised one at a time and joined with pauses; (samples, word end times)."""
    if SPEECH.exists() and TIMES.exists():
        return read_wav(SPEECH).astype(np.float32) / 32768, json.loads(TIMES.read_text())
    rng = random.Random(0)
    parts, ends, total = [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(count):
            raw, wav = Path(tmp) / "w.wav", Path(tmp) / "w16.wav"
            subprocess.run(["espeak-ng", "-v", "en-us", "-s", "170", "-w", str(raw), rng.choice(WORDS)],
                           check=True)  # fmt: skip
            subprocess.run(
                ["sox", str(raw), "-r", str(SAMPLE_RATE), "-b", "16", str(wav)], check=True
            )
            word = read_wav(wav)
            loud = np.flatnonzero(np.abs(word) > 0.01 * np.abs(word).max())
            word = word[loud[0] : loud[-1] + 1]
            gap = np.zeros(int(rng.uniform(0.1, 0.4) * SAMPLE_RATE), dtype=np.int16)
            if index == 0:
                parts.append(np.zeros(SAMPLE_RATE // 2, dtype=np.int16))
                total += SAMPLE_RATE // 2
            parts += [word, gap]
            total += len(word)
            ends.append(total / SAMPLE_RATE)
            total += len(gap)
    samples = np.concatenate(parts)
    from _common import write_wav

    write_wav(SPEECH, samples)
    TIMES.write_text(json.dumps(ends))
    return samples.astype(np.float32) / 32768, ends


def prompt_geometry(cfg: dict) -> dict:
    """`build_cache_aware`'s config turned into nemotron-3.5-asr-streaming-0.6b's geometry: an
    RNNT with the language projection, its encoder flags and its prompt dictionary."""
    import yaml

    published = yaml.safe_load(PROMPT_CONFIG.read_text())["model"]["model_defaults"]
    cfg = {k: v for k, v in cfg.items() if k != "aux_ctc"}
    cfg["preprocessor"] = {**cfg["preprocessor"], "features": 128}
    cfg["encoder"] = {**cfg["encoder"], "feat_in": 128, "n_layers": 24, "d_model": 1024,
                      "att_context_size": [[56, 3], [56, 0], [56, 6], [56, 13]],
                      "xscaling": False, "use_bias": False}  # fmt: skip
    cfg["decoder"]["prednet"]["pred_rnn_layers"] = 2
    cfg["joint"]["jointnet"]["encoder_hidden"] = 1024
    cfg["model_defaults"] = {"enc_hidden": 1024, "pred_hidden": 640, "joint_hidden": 640,
                             "initialize_prompt_feature": True, "num_prompts": 128,
                             "prompt_dictionary": {**published["prompt_dictionary"],
                                                   "nn-NO": 104, "nn": 104}}  # fmt: skip
    return cfg


def _tokenizer(directory: str) -> None:
    """A 1024-piece BPE model of random words in `directory`."""
    import string

    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    rng = random.Random(0)
    words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9)))
             for _ in range(5000)]  # fmt: skip
    text = Path(directory) / "text.txt"
    text.write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(20000)))
    create_spt_model(str(text), vocab_size=1024, sample_size=-1, do_lower_case=True,
                     output_dir=directory, tokenizer_type="bpe")  # fmt: skip


def _streaming_config(tokenizer: str, features: int, contexts: list, hybrid: bool) -> dict:
    """A 17 x 512 cache-aware FastConformer RNNT (and CTC head if `hybrid`) config."""
    joint = {"joint_hidden": 640, "activation": "relu", "dropout": 0.2,
             "encoder_hidden": 512, "pred_hidden": 640}  # fmt: skip
    cfg = {
        "sample_rate": SAMPLE_RATE,
        "tokenizer": {"dir": tokenizer, "type": "bpe"},
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "features": features,
            "window_size": 0.025,
            "window_stride": 0.01,
            "n_fft": 512,
            "normalize": "NA",
            "dither": 0.0,
            "pad_to": 0,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": features,
            "n_layers": 17,
            "d_model": 512,
            "n_heads": 8,
            "subsampling": "dw_striding",
            "subsampling_factor": 8,
            "subsampling_conv_channels": 256,
            "causal_downsampling": True,
            "ff_expansion_factor": 4,
            "self_attention_model": "rel_pos",
            "att_context_size": contexts,
            "att_context_style": "chunked_limited",
            "xscaling": True,
            "untie_biases": True,
            "conv_kernel_size": 9,
            "conv_norm_type": "layer_norm",
            "conv_context_size": "causal",
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "blank_as_pad": True,
            "prednet": {"pred_hidden": 640, "pred_rnn_layers": 1, "dropout": 0.2},
        },
        "joint": {"_target_": "nemo.collections.asr.modules.RNNTJoint", "jointnet": joint},
        "model_defaults": {"enc_hidden": 512, "pred_hidden": 640, "joint_hidden": 640},
        "decoding": {"strategy": "greedy_batch", "greedy": {"max_symbols": 10}},
        "loss": {"loss_name": "default"},
        "optim": None,
    }
    if hybrid:
        cfg["aux_ctc"] = {
            "ctc_loss_weight": 0.3,
            "decoder": {
                "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
                "feat_in": 512,
                "num_classes": -1,
                "vocabulary": [],
            },
            "decoding": {"strategy": "greedy_batch"},
        }
    return cfg


def build_cache_aware(path: Path, kind: str = "cache-aware") -> None:
    """A random-weight streaming FastConformer built and saved by NeMo: the hybrid RNNT-CTC
    (`cache-aware`) or the language-prompt RNNT (`prompt`, `prompt_geometry`)."""
    import torch
    from nemo.collections.asr.models import (
        EncDecHybridRNNTCTCBPEModel,
        EncDecRNNTBPEModelWithPrompt,
    )
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        _tokenizer(tmp)
        cfg = _streaming_config(tmp, 80, [[70, 13], [70, 6], [70, 1], [70, 0]], hybrid=True)
        if kind == "prompt":
            model = EncDecRNNTBPEModelWithPrompt(cfg=OmegaConf.create(prompt_geometry(cfg)))
            model.eval().set_inference_prompt("auto")  # calibrated as it runs by default
        else:
            model = EncDecHybridRNNTCTCBPEModel(cfg=OmegaConf.create(cfg)).eval()
        speechlike(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save_to(str(path))


def build_eou(path: Path, eou_per_frame: float = 0.04) -> None:
    """A random-weight end-of-utterance model of parakeet_realtime_eou_120m-v1's geometry,
    built and saved by NeMo; `<EOU>`'s bias raised until greedy decoding emits about
    `eou_per_frame` of them per encoder frame."""
    import torch
    from nemo.collections.asr.models.asr_eou_models import EncDecRNNTBPEEOUModel
    from omegaconf import OmegaConf

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reference"))
    from make_streaming_checkpoint_fixtures import MARKERS, append_markers

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        _tokenizer(tmp)
        append_markers({"dir": tmp}, MARKERS)
        cfg = _streaming_config(tmp, 128, [70, 1], hybrid=False)
        model = EncDecRNNTBPEEOUModel(cfg=OmegaConf.create(cfg)).eval()
        speechlike(model)
        speechlike(model, eou_per_frame, label=model.eou_token)
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save_to(str(path))


def speechlike(model, tokens_per_frame: float = 0.35, label: int | None = None) -> None:
    """Scale the joint as build_tdt's `speechlike` does, then raise the blank's bias until
    greedy decoding of the word speech emits about one token per three frames (speech).
    With `label`: leave the joint and the blank, and raise that label's bias until it is
    emitted `tokens_per_frame` times per frame instead."""
    import torch

    samples, _ = word_speech()
    signal = torch.from_numpy(samples[: 8 * SAMPLE_RATE])[None]
    layer = model.joint.joint_net[-1]
    blank = model.joint.num_classes_with_blank - 1
    raised = blank if label is None else label
    with torch.no_grad():
        if label is None:
            layer.weight.mul_(8.0)
        features, length = model.preprocessor(
            input_signal=signal, length=torch.tensor([signal.shape[1]])
        )
        encoded, encoded_len = model.encoder(audio_signal=features, length=length)
        encoded = model._apply_prompt_to_encoded(encoded)  # a prompt model's language

        def rate(extra: float) -> float:
            layer.bias[raised] = base + extra
            (hyp,) = model.decoding.rnnt_decoder_predictions_tensor(encoded, encoded_len)
            ids = [int(i) for i in hyp.y_sequence]
            emitted = len(ids) if label is None else ids.count(label)
            return emitted / int(encoded_len[0])

        base, low, high = float(layer.bias[raised]), 0.0, 16.0
        for _ in range(
            12
        ):  # bisect the extra bias: the blank's lowers the rate, a label's raises it
            middle = (low + high) / 2
            above = rate(middle) > tokens_per_frame
            low, high = (middle, high) if above == (label is None) else (low, middle)
        final = rate(high if label is None else low)
    print(f"bias of {raised} +{high if label is None else low:.2f}: {final:.3f} per frame",
          file=sys.stderr)  # fmt: skip


def ensure_model(kind: str) -> Path:
    path = MODELS[kind]
    if not path.exists():
        print(f"building {path.name} with NeMo (once) ...", file=sys.stderr)
        subprocess.run([sys.executable, __file__, "--build", kind], check=True)
    return path


def edit_distance(a: list, b: list) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def utterance_speech(samples, ends) -> tuple[np.ndarray, list[float], list[float]]:
    """The word speech with `UTTERANCE_GAP` s of silence after every `UTTERANCE_WORDS`th
    word: (samples, word end times, utterance end times)."""
    gap = np.zeros(round(UTTERANCE_GAP * SAMPLE_RATE), dtype=samples.dtype)
    parts, new_ends, utterances, cut, shift = [], [], [], 0, 0.0
    for index, end in enumerate(ends):
        new_ends.append(end + shift)
        if (index + 1) % UTTERANCE_WORDS == 0:
            at = round(end * SAMPLE_RATE) + 1
            parts += [samples[cut:at], gap]
            cut, shift = at, shift + UTTERANCE_GAP
            utterances.append(new_ends[-1])
    parts.append(samples[cut:])
    return np.concatenate(parts), new_ends, utterances


def simulate(model, samples, ends, utterances=(), **options) -> dict:
    """One stream on the simulated real-time clock; latencies per word and the RTF; for an
    end-of-utterance model also per utterance end and per marker (see the docstring)."""
    piece = round(PIECE * SAMPLE_RATE)
    frame = model.frame_seconds
    clock = busy = 0.0
    first: dict[int, float] = {}
    final: dict[int, float] = {}
    words = [(i, int(e / frame)) for i, e in enumerate(ends)]
    utterance_frames = [(u, int(u / frame)) for u in utterances]
    ended: dict[float, float] = {}
    markers: list[float] = []
    with model.transcribe_stream(**options) as stream:
        for start in range(0, len(samples), piece):
            arrival = min(start + piece, len(samples)) / SAMPLE_RATE
            clock = max(clock, arrival)
            began = time.perf_counter()
            update = stream.add_audio(samples[start : start + piece])
            spent = time.perf_counter() - began
            busy += spent
            clock += spent
            markers += [clock - (e.frame + 1) * frame for e in update.end_of_utterances
                        if e.kind == "utterance"]  # fmt: skip
            for end, end_frame in utterance_frames:
                if end not in ended and stream.final_frames > end_frame:
                    ended[end] = clock - end
            for index, end_frame in words:
                if index not in first and stream.seen_frames > end_frame:
                    first[index] = clock - ends[index]
                if index not in final and stream.final_frames > end_frame:
                    final[index] = clock - ends[index]
        began = time.perf_counter()
        result = stream.finalize()
        spent = time.perf_counter() - began
        busy += spent
        clock += spent
    for index, _ in words:  # words decoded only by finalize (the end of the audio)
        first.setdefault(index, clock - ends[index])
        final.setdefault(index, clock - ends[index])
    for end, _ in utterance_frames:
        ended.setdefault(end, clock - end)
    markers += [clock - (e.frame + 1) * frame for e in stream.last_update.end_of_utterances
                if e.kind == "utterance"]  # fmt: skip
    return {
        "first": list(first.values()),
        "final": list(final.values()),
        "utterance_ends": list(ended.values()),
        "markers": markers,
        "rtf": busy / (len(samples) / SAMPLE_RATE),
        "ids": [t.id for t in result.tokens],
    }


def quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[
        min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))
    ]


def run_model(kind: str, samples, ends, repeats: int, language: str | None = None) -> list[dict]:
    import nemo_mlx_parakeet as parakeet

    model = parakeet.load(ensure_model(kind), cache_dir=CACHE / "models", verbose=False)
    prompt = {"language": language} if kind == "prompt" else {}
    if model.cache_aware:
        contexts = model.encoder.config.att_context_sizes
        settings = [{"context": list(c), **prompt} for c in contexts]
    else:
        settings = [{"chunk": c, "context": (lf, rt)} for c, lf, rt in OFFLINE_SETTINGS]
    utterances: list[float] = []
    if kind == "eou":
        samples, ends, utterances = utterance_speech(samples, ends)
    rows = []
    for options in settings:
        if model.cache_aware:  # offline with the same attention context
            model.encoder.set_default_att_context_size(options["context"])
        offline_ids = [t.id for t in model.transcribe(samples, **prompt).tokens]
        simulate(model, samples[: 3 * SAMPLE_RATE], ends[:3], **options)  # warm up
        runs = [simulate(model, samples, ends, utterances, **options) for _ in range(repeats)]
        best = min(runs, key=lambda r: r["rtf"])
        edits = edit_distance(best["ids"], offline_ids)
        rows.append({"model": kind, "options": options, **best, "edits": edits,
                     "offline_tokens": len(offline_ids), "frame": model.frame_seconds})  # fmt: skip
    return rows


def encoder_steps(samples) -> None:
    """Median time of one cache-aware encoder step per lookahead (features precomputed)."""
    import nemo_mlx_parakeet as parakeet  # first: it loads the optimised BLAS before MLX (mlx-cpu-runtime)

    # isort: split
    import mlx.core as mx

    from mlx_conformer.streaming import CacheAwareStreamer, streaming_config

    model = parakeet.load(ensure_model("cache-aware"), cache_dir=CACHE / "models", verbose=False)
    features, _ = model.frontend(samples)
    features = np.array(features[0])
    print("| lookahead | chunk | encoder step (median) | p95 | step / chunk audio |")
    print("| --- | --- | --- | --- | --- |")
    for context in model.encoder.config.att_context_sizes:
        streaming = streaming_config(model.encoder, context)
        for _ in range(2):  # the first pass warms up
            streamer = CacheAwareStreamer(model.encoder, streaming)
            times, index = [], 0
            while index < len(features):
                size = streaming.chunk_size[0] if index == 0 else streaming.shift_size[1]
                began = time.perf_counter()
                out = streamer.add(features[index : index + size])
                mx.eval(out)
                times.append(time.perf_counter() - began)
                index += size
        chunk = (context[1] + 1) * model.frame_seconds
        median, p95 = quantiles(times[1:])
        print(f"| {context[1]} | {chunk:.2f} s | {median * 1e3:.1f} ms | {p95 * 1e3:.1f} ms "
              f"| {median / chunk:.2f} |", flush=True)  # fmt: skip


def describe(row: dict) -> str:
    options = row["options"]
    if row["model"] in CACHE_AWARE:
        left, right = options["context"]
        language = f", {options['language'] or 'auto'}" if "language" in options else ""
        return f"lookahead {right} (chunk {(right + 1) * row['frame']:.2f} s){language}"
    left, right = options["context"]
    return f"chunk {options['chunk']:.2f} s, context {left * row['frame']:.1f} s / {right * row['frame']:.2f} s"


ACCURACY_SETTINGS = [
    {"chunk": 0.32, "context": (20, 4)},
    {"chunk": 0.96, "context": (50, 12)},
    {},  # the defaults: 1 s chunks, 10 s / 1 s context
    {"chunk": 2.0, "context": (125, 50)},
    {"chunk": 0.5, "context": (1000, 1000)},  # windows covering the clips
]


def accuracy() -> None:
    """Streamed vs offline on the test clips with the NeMo fixture models (no timing)."""
    import nemo_mlx_parakeet as parakeet

    root = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
    # the clip under 1 s is left out: offline `transcribe` pads it to 1 s (NeMo's rule), a
    # stream cannot know it will be short
    clips = [c for c in json.loads((root / "audio" / "clips.json").read_text())["clips"]
             if c != "shorter_than_frame_16k.wav"]  # fmt: skip
    print("| model | setting | clips with equal text | token error rate vs offline |")
    print("| --- | --- | --- | --- |")
    for name in ("tdt", "rnnt", "ctc", "hybrid_tdt_ctc"):
        model = parakeet.load(
            root / "models" / f"{name}.nemo", cache_dir=CACHE / "models", verbose=False
        )
        signals = {c: np.array(parakeet.model.load_audio(root / "audio" / c)) for c in clips}
        offline = {c: model.transcribe(x) for c, x in signals.items()}
        for options in ACCURACY_SETTINGS:
            equal = errors = total = 0
            for clip, x in signals.items():
                with model.transcribe_stream(**options) as stream:
                    for start in range(0, len(x), 1600):
                        stream.add_audio(x[start : start + 1600])
                    result = stream.finalize()
                ref = [t.id for t in offline[clip].tokens]
                equal += result.text == offline[clip].text
                errors += edit_distance([t.id for t in result.tokens], ref)
                total += len(ref)
            label = ", ".join(f"{k} {v}" for k, v in options.items()) or "defaults"
            print(
                f"| {name} | {label} | {equal}/{len(clips)} | {errors / max(1, total):.3f} |",
                flush=True,
            )


DEMO_SETTINGS = [
    {},  # the defaults: 1 s chunks, 10 s / 1 s context
    {"chunk": 0.5, "context": (125, 13)},
    {"chunk": 1.0, "context": (25, 6)},
    {"chunk": 2.0, "context": (125, 25)},
]


def word_errors(hypothesis: str, reference: str) -> int:
    """Word-level edit distance."""
    return edit_distance(hypothesis.split(), reference.split())


def demo_accuracy() -> None:
    """Streamed vs offline with a trained model: the bundled demo model on its 40 held-out
    clips (tests/fixtures/demo), WER against the clips' reference sentences."""
    import nemo_mlx_parakeet as parakeet

    fixture = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "demo"
    clips = json.loads((fixture / "heldout.json").read_text())["clips"]
    model = parakeet.load("demo", cache_dir=CACHE / "models", verbose=False)
    signals = [np.array(parakeet.model.load_audio(fixture / c["file"])) for c in clips]
    references = [c["text"] for c in clips]
    words = sum(len(r.split()) for r in references)
    offline = [t.text for t in model.transcribe(signals)]
    offline_errors = sum(map(word_errors, offline, references))
    print("| demo model, 40 held-out clips | WER | clips with the offline text |")
    print("| --- | --- | --- |")
    print(f"| offline | {offline_errors / words:.2%} | - |")
    for options in DEMO_SETTINGS:
        texts = []
        for x in signals:
            with model.transcribe_stream(**options) as stream:
                for start in range(0, len(x), 1600):
                    stream.add_audio(x[start : start + 1600])
                texts.append(stream.finalize().text)
        errors = sum(map(word_errors, texts, references))
        same = sum(a == b for a, b in zip(texts, offline, strict=True))
        label = ", ".join(f"{k} {v}" for k, v in options.items()) or "streaming, defaults"
        print(f"| {label} | {errors / words:.2%} | {same}/{len(clips)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--build", choices=list(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--language", help="the prompt model's target language (default: auto)")
    parser.add_argument("--seconds", type=float,
                        help="only the first S seconds of the speech (the words ending in them)")  # fmt: skip
    parser.add_argument("--accuracy", action="store_true",
                        help="streamed vs offline text of the fixture models on the test clips")  # fmt: skip
    parser.add_argument("--encoder-steps", action="store_true",
                        help="time the cache-aware encoder step alone, per lookahead")  # fmt: skip
    args = parser.parse_args()
    if args.accuracy:
        accuracy()
        demo_accuracy()
        return
    if args.encoder_steps:
        encoder_steps(word_speech()[0])
        return
    if args.build:
        if args.build == "eou":
            build_eou(MODELS["eou"])
        elif args.build in CACHE_AWARE:
            build_cache_aware(MODELS[args.build], args.build)
        else:
            build_tdt(MODELS["offline"], speechlike=True)
        return
    if Path("/tmp/cpu-busy.lock").exists():
        print("note: /tmp/cpu-busy.lock exists: timings are disturbed", file=sys.stderr)
    samples, ends = word_speech()
    if args.seconds:  # a shorter run, for a busy machine
        samples = samples[: round(args.seconds * SAMPLE_RATE)]
        ends = [end for end in ends if end <= args.seconds]
    print(f"{platform.machine()}, {len(samples) / SAMPLE_RATE:.1f} s of speech, {len(ends)} words, "
          f"pieces of {PIECE:g} s, best of {args.repeats}")  # fmt: skip
    print(
        "| model | setting | first token latency (median / p95) | final (median / p95) | RTF | vs offline (edits / offline tokens) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    eou_rows = []
    for kind in args.models:
        for row in run_model(kind, samples, ends, args.repeats, args.language):
            f50, f95 = quantiles(row["first"])
            g50, g95 = quantiles(row["final"])
            print(f"| {row['model']} | {describe(row)} | {f50:.2f} / {f95:.2f} s | {g50:.2f} / {g95:.2f} s "
                  f"| {row['rtf']:.2f} | {row['edits']} / {row['offline_tokens']} |", flush=True)  # fmt: skip
            if kind == "eou":
                eou_rows.append(row)
    if eou_rows:
        print(
            f"\neou: utterances of {UTTERANCE_WORDS} words, {UTTERANCE_GAP:g} s of silence after each"
        )
        print("| setting | utterance end -> event (median / p95) | marker frame -> event (median / p95) "
              "| markers | RTF |")  # fmt: skip
        print("| --- | --- | --- | --- | --- |")
    for row in eou_rows:
        u50, u95 = quantiles(row["utterance_ends"])
        m50, m95 = quantiles(row["markers"]) if row["markers"] else (float("nan"),) * 2
        print(f"| {describe(row)} | {u50:.2f} / {u95:.2f} s | {m50:.2f} / {m95:.2f} s "
              f"| {len(row['markers'])} | {row['rtf']:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
