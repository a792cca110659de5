"""Live parity of the cache-aware step: NeMo's streaming loop and ours, same random weights.

NeMo side: `CacheAwareStreamingAudioBuffer` chunks the features and
`ConformerEncoder.cache_aware_stream_step` encodes them, as NeMo's example script runs it.
Our side: `CacheAwareStreamer`, fed all at once and in small pieces. Encoder configs beyond
the committed fixture's: striding x4 with batch norm, the `regular` attention style (whose
cache drops the lookahead frames), no xscaling, no biases, `feat_out`.
"""

from __future__ import annotations

import types

import mlx.core as mx
import numpy as np
import pytest

from mlx_conformer import Conformer, ConformerConfig
from mlx_conformer.streaming import CacheAwareStreamer, streaming_config

pytestmark = pytest.mark.reference

torch = pytest.importorskip("torch", reason="live NeMo parity needs the `reference` group (torch)")
streaming_utils = pytest.importorskip(
    "nemo.collections.asr.parts.utils.streaming_utils",
    reason="live NeMo parity needs the `reference` group (nemo_toolkit[asr])",
)


def _sibling(name: str):
    """The helpers of test_live_nemo.py (NeMo encoder with moved weights, our layout)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_live = _sibling("test_live_nemo")
BASE, _mlx_weights, _nemo_encoder = _live.BASE, _live._mlx_weights, _live._nemo_encoder
_relative_error = _live._relative_error

CAUSAL = {"causal_downsampling": True, "conv_context_size": "causal"}
VARIANTS = {
    "dw8_chunked": {"subsampling": "dw_striding", "subsampling_factor": 8,
                    "att_context_style": "chunked_limited",
                    "att_context_size": [[6, 2], [6, 1], [6, 0]], "conv_norm_type": "layer_norm"},
    "striding4_batch_norm": {"subsampling": "striding", "subsampling_factor": 4,
                             "att_context_style": "chunked_limited", "att_context_size": [[4, 1], [4, 0]],
                             "xscaling": False},
    "dw8_regular": {"subsampling": "dw_striding", "subsampling_factor": 8,
                    "att_context_style": "regular", "att_context_size": [[6, 1]]},
    "no_bias_feat_out": {"subsampling": "dw_striding", "subsampling_factor": 8,
                         "att_context_style": "chunked_limited", "att_context_size": [[8, 3]],
                         "use_bias": False, "feat_out": 48},
}  # fmt: skip


def _nemo_stream(encoder, features: torch.Tensor) -> np.ndarray:
    """NeMo's buffer and step loop over (1, F, T) features; the encoder frames, concatenated."""
    preprocessor = {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                    "features": features.shape[1], "normalize": "NA"}  # fmt: skip
    from nemo.core.classes.common import Serialization
    from omegaconf import OmegaConf

    model = types.SimpleNamespace(
        encoder=encoder,
        _cfg=OmegaConf.create({"preprocessor": preprocessor}),
        from_config_dict=Serialization.from_config_dict,
        device=torch.device("cpu"),
    )
    buffer = streaming_utils.CacheAwareStreamingAudioBuffer(model=model, online_normalization=False)
    buffer.append_processed_signal(features)
    channel, time, channel_len = encoder.get_initial_cache_state(batch_size=1)
    outputs = []
    with torch.no_grad():
        for step, (chunk, lengths) in enumerate(iter(buffer)):
            encoded, encoded_len, channel, time, channel_len = encoder.cache_aware_stream_step(
                processed_signal=chunk,
                processed_signal_length=lengths,
                cache_last_channel=channel,
                cache_last_time=time,
                cache_last_channel_len=channel_len,
                keep_all_outputs=buffer.is_buffer_empty(),
                drop_extra_pre_encoded=0
                if step == 0
                else encoder.streaming_cfg.drop_extra_pre_encoded,
            )
            outputs.append(encoded[0, :, : int(encoded_len[0])].T.numpy())
    return np.concatenate(outputs)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_streaming_matches_nemo_for_every_lookahead(variant):
    cfg = {**BASE, **CAUSAL, **VARIANTS[variant]}
    encoder = _nemo_encoder(cfg)
    model = Conformer(ConformerConfig.from_nemo(cfg))
    model.load_weights(_mlx_weights(encoder), strict=True)
    torch.manual_seed(1)
    features = torch.randn(1, cfg["feat_in"], 397)
    frames = features[0].T.numpy()
    for context in cfg["att_context_size"]:
        encoder.set_default_att_context_size(context)
        expected = _nemo_stream(encoder, features)
        streaming = streaming_config(model, context)
        nemo_cfg = encoder.streaming_cfg
        assert list(streaming.chunk_size) == list(nemo_cfg.chunk_size)
        assert streaming.cache_drop_size == nemo_cfg.cache_drop_size
        assert streaming.valid_out_len == nemo_cfg.valid_out_len
        for piece in (len(frames), 5):
            streamer = CacheAwareStreamer(model, streaming)
            parts = [streamer.add(frames[i : i + piece]) for i in range(0, len(frames), piece)]
            ours = np.array(mx.concatenate([*parts, streamer.finish()]))
            assert ours.shape == expected.shape, (variant, context, piece)
            assert _relative_error(ours, expected) <= 1e-4, (variant, context, piece)
