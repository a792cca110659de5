"""Prompts and the aggregate tokenizer on SentencePiece models trained here.

NeMo-made prompts and texts are checked on the Canary fixture model in the root tests.
"""

from __future__ import annotations

import io

import pytest
import sentencepiece as spm

from nemo_mlx_canary import CanaryError, CanaryTokenizer, PromptOptions, build_prompt

SPECIALS = ["<|nospeech|>", "<pad>", "<|endoftext|>", "<|startoftranscript|>", "<|pnc|>", "<|nopnc|>",
            "<|startofcontext|>", "<|emo:undefined|>", "<|itn|>", "<|noitn|>", "<|timestamp|>",
            "<|notimestamp|>", "<|diarize|>", "<|nodiarize|>", "<|transcribe|>", "<|translate|>",
            "<|en|>", "<|de|>"]  # fmt: skip


def _train(
    lines: list[str], size: int, symbols: list[str] | None = None
) -> spm.SentencePieceProcessor:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=size,
        user_defined_symbols=symbols or [], model_type="bpe", character_coverage=1.0,
    )  # fmt: skip
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


@pytest.fixture(scope="module")
def tokenizer() -> CanaryTokenizer:
    special = _train(SPECIALS, len(SPECIALS) + 4, SPECIALS)
    en = _train(["the cat sat on the mat", "a dog ran far away", "hello world"] * 20, 40)
    de = _train(["der hund lief weit weg", "hallo welt", "die katze sass"] * 20, 40)
    return CanaryTokenizer([("spl_tokens", special), ("en", en), ("de", de)])


def test_ids_are_offset_by_the_sub_tokenizers_before(tokenizer):
    special_size = len(tokenizer._pieces) - 80
    en_ids = tokenizer.encode("the cat", "en")
    de_ids = tokenizer.encode("hallo welt", "de")
    assert all(special_size <= i < special_size + 40 for i in en_ids)
    assert all(special_size + 40 <= i < special_size + 80 for i in de_ids)
    assert tokenizer.decode(en_ids).strip() == "the cat"
    assert tokenizer.decode(de_ids).strip() == "hallo welt"


def test_prompt_layouts(tokenizer):
    s = tokenizer.special
    v1 = build_prompt(tokenizer, "canary", PromptOptions("en", "de", pnc=False))
    assert v1 == [
        s("<|startoftranscript|>"),
        s("<|en|>"),
        s("<|translate|>"),
        s("<|de|>"),
        s("<|nopnc|>"),
    ]
    v2 = build_prompt(tokenizer, "canary2", PromptOptions("en"))
    assert v2 == [s(t) for t in ("<|startofcontext|>", "<|startoftranscript|>", "<|emo:undefined|>", "<|en|>",
                                 "<|en|>", "<|pnc|>", "<|noitn|>", "<|notimestamp|>", "<|nodiarize|>")]  # fmt: skip
    assert tokenizer.languages == ["de", "en"]


def test_bad_requests_are_one_clear_error(tokenizer):
    with pytest.raises(CanaryError, match="supported: de, en"):
        build_prompt(tokenizer, "canary", PromptOptions("fr"))
    with pytest.raises(CanaryError, match="use task ast"):
        build_prompt(tokenizer, "canary", PromptOptions("en", "de", task="asr"))
    with pytest.raises(CanaryError, match="prompt format"):
        build_prompt(tokenizer, "whisper", PromptOptions("en"))


def test_timestamps_need_the_canary2_slot_and_frame_tokens(tokenizer):
    with pytest.raises(CanaryError, match=r"no frame tokens \(<\|0\|>"):
        build_prompt(tokenizer, "canary2", PromptOptions("en", timestamps=True))
    with pytest.raises(CanaryError, match=r"prompt format \(canary\) has no timestamp slot"):
        build_prompt(tokenizer, "canary", PromptOptions("en", timestamps=True))
    frames = ["<|0|>", "<|1|>", "<|2|>"]
    special = _train(SPECIALS + frames, len(SPECIALS) + 7, SPECIALS + frames)
    en = _train(["the cat sat on the mat", "hello world"] * 20, 30)
    with_frames = CanaryTokenizer([("spl_tokens", special), ("en", en)])
    ids = build_prompt(with_frames, "canary2", PromptOptions("en", timestamps=True))
    assert ids[7] == with_frames.special("<|timestamp|>")
