"""The biasing options: parsed and checked at the edge, one line for each bad value."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from speech_transcript.biasing import (
    DEFAULT_BOOST_ALPHA,
    DEFAULT_BOOST_SCORE,
    DEFAULT_SPOTTER_SCORE,
    Biasing,
    BiasingError,
    add_biasing_arguments,
    biasing_from_args,
    with_boost,
)
from speech_transcript.cli import command_parser


def parse(*argv: str) -> Biasing:
    parser = command_parser("test", "test")
    add_biasing_arguments(parser)
    return biasing_from_args(parser.parse_args(list(argv)))


def test_phrases_from_options_and_files_in_order(tmp_path):
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("  Zanzibar\n\nnorth station \n", encoding="utf-8")
    biasing = parse("--boost-phrase", "Anna Lopez", "--boost-file", str(phrases),
                    "--boost-phrase", "Stella")  # fmt: skip
    # the phrases given one by one come first, then each file's
    assert biasing.phrases == ("Anna Lopez", "Stella", "Zanzibar", "north station")
    assert biasing.boost_alpha == DEFAULT_BOOST_ALPHA == 1.0
    assert biasing.boost_score == 1.0  # NeMo's context_score
    assert biasing.lm is None
    assert biasing


def test_no_options_is_no_biasing():
    assert not parse()


def test_weights_and_lm(tmp_path):
    lm = tmp_path / "lm.arpa"
    lm.write_text("\\data\\\n")
    biasing = parse("--boost-phrase", "a", "--boost-score", "2.5", "--boost-alpha", "0.3",
                    "--lm", str(lm), "--lm-alpha", "0.5")  # fmt: skip
    assert (biasing.boost_score, biasing.boost_alpha, biasing.lm, biasing.lm_alpha) == (
        2.5, 0.3, lm, 0.5)  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--boost-file", "/no/such/phrases.txt"], "cannot read phrase file /no/such/phrases.txt"),
        (["--boost-alpha", "1"], "--boost-score and --boost-alpha need --boost-phrase"),
        (["--boost-phrase", "a", "--lm-alpha", "1"], "--lm-alpha needs --lm"),
        (["--lm", "/no/such.arpa"], "--lm needs --lm-alpha"),
        (["--lm", "/no/such.arpa", "--lm-alpha", "0.5"], "LM file /no/such.arpa does not exist"),
        (["--boost-phrase", "  "], "boost phrases must be non-empty text"),
    ],
)
def test_bad_combinations_are_one_line(argv, message):
    with pytest.raises(BiasingError, match=message.replace(".", r"\.")):
        parse(*argv)


def test_an_empty_phrase_file_is_refused(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(BiasingError, match="has no phrases"):
        parse("--boost-file", str(empty))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--boost-alpha", "-1"], "argument --boost-alpha: must be a number of at least 0, got -1"),
        (["--boost-alpha", "nan"], "argument --boost-alpha: must be a number of at least 0"),
        (["--lm-alpha", "inf"], "argument --lm-alpha: must be a number of at least 0"),
        (["--boost-score", "0"], "argument --boost-score: must be a number above 0, got 0"),
    ],
)
def test_bad_values_are_one_line_while_parsing(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        parse(*argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"boost_alpha": -0.5}, "boost alpha must be at least 0, got -0.5"),
        ({"boost_alpha": math.nan}, "boost alpha must be a finite number"),
        ({"boost_score": 0.0}, "boost score must be above 0"),
        ({"lm": Path("x.arpa")}, "an LM needs its weight"),
        ({"lm_alpha": 0.5}, "lm_alpha is the weight of an LM"),
        ({"phrases": ("ok", "")}, "boost phrases must be non-empty text"),
    ],
)
def test_the_api_checks_the_same(kwargs, message):
    with pytest.raises(BiasingError, match=message):
        Biasing(**{"phrases": ("a",), **kwargs})


def test_word_spotter_mode(tmp_path):
    assert Biasing(("a",)).boost_score == DEFAULT_BOOST_SCORE
    assert Biasing(("a",), word_spotter=True).boost_score == DEFAULT_SPOTTER_SCORE
    assert Biasing(("a",), boost_score=2.0, word_spotter=True).boost_score == 2.0
    with pytest.raises(BiasingError, match="needs phrases"):
        Biasing(word_spotter=True)
    lm = tmp_path / "lm.arpa"
    lm.write_text("\\data\\\n")
    with pytest.raises(BiasingError, match="leave out the LM"):
        Biasing(("a",), lm=lm, lm_alpha=0.5, word_spotter=True)


def test_boost_short_form():
    assert with_boost(None, ["a", "b"]) == Biasing(("a", "b"))
    assert with_boost(Biasing(("c",)), []) == Biasing(("c",))
    with pytest.raises(BiasingError, match="not both"):
        with_boost(Biasing(("c",)), ["a"])
    with pytest.raises(BiasingError, match="not one string"):
        with_boost(None, "ab")
