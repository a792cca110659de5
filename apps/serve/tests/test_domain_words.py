"""A request's domain words through the official `openai` client: Canary's phrase boosting
(`boost` on a Canary model) and the CTC word spotter (`word_spotter=true`), each equal to
what the CLI writes for the same files and phrases (`canary --boost-phrase ...`,
`parakeet --word-spotter --boost-phrase ...`), on clips where the phrases change the output;
requests that differ only in how their phrases are used never share a round; bad values are
one 400 each.

The phrases are those of the NeMo-made fixtures: `beam_fusion/canary_fusion.json` (NeMo's
AED beam with the boosting tree changed canary-180m-flash's text on these clips) and
`demo/word_spotter.json` (NeMo's word spotter changed the demo model's TDT text), whose
NeMo texts the spotted answers must equal as well."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI
from server_process import ROOT, running_server

FIXTURES = ROOT / "tests" / "fixtures"
CANARY_FIXTURE = FIXTURES / "checkpoints" / "canary-180m-flash.nemo"
RNNT_FIXTURE = FIXTURES / "models" / "rnnt.nemo"  # a transducer without a CTC head
CANARY_FUSION = json.loads((FIXTURES / "beam_fusion" / "canary_fusion.json").read_text())
CANARY_PHRASES = list(dict.fromkeys(CANARY_FUSION["boosting_tree"]["key_phrases_list"]))
CANARY_CLIPS = [FIXTURES / "audio" / clip for clip in CANARY_FUSION["clips"]]
SPOTTER = json.loads((FIXTURES / "demo" / "word_spotter.json").read_text())
SPOTTED = SPOTTER["settings"]["default"]  # NeMo's recipe's defaults: the CLI's
# the fixture's words: each its own spelling, and one in NeMo's word_spelling form
SPOTTER_PHRASES = [*SPOTTER["phrases"],
                   *("_".join([w, *s]) for w, s in SPOTTER["alt_spellings"].items())]  # fmt: skip
SPOTTER_CLIPS = SPOTTED["changed"]["tdt"]  # the demo model's head is its TDT


@pytest.fixture(scope="module")
def greedy_canary(tmp_path_factory) -> Path:
    """The Canary fixture converted, its config's decoding made NeMo's greedy strategy
    (the published checkpoints' is beam): a checkpoint whose default cannot fuse."""
    from nemo_mlx_convert import convert_nemo

    out = tmp_path_factory.mktemp("greedy") / "canary-greedy"
    convert_nemo(CANARY_FIXTURE, out)
    config = json.loads((out / "config.json").read_text())
    config["nemo_config"]["decoding"]["strategy"] = "greedy_batch"
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def server(cache_dir, greedy_canary):
    with running_server(
        "--model", "demo", "--model", f"canary={CANARY_FIXTURE}",
        "--model", f"rnnt={RNNT_FIXTURE}", "--model", f"canary-greedy={greedy_canary}",
        "--cache-dir", str(cache_dir), "--max-wait-ms", "200",
    ) as handle:  # fmt: skip
        yield handle


@pytest.fixture(scope="module")
def client(server) -> OpenAI:
    return server.client()


def cli(command: str, model: str, files: list[Path], cache: Path, *options: str) -> list[dict]:
    """The CLI's JSON for each of `files` (one run: the model loads once)."""
    result = subprocess.run(
        [sys.executable, "-m", f"nemo_mlx_{command}.cli", "--model", model,
         "--output-format", "json", "--cache-dir", str(cache), "--quiet", *options,
         *map(str, files)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    if len(files) == 1:  # one file's JSON is indented, several are one line each
        return [json.loads(result.stdout)]
    return [json.loads(line) for line in result.stdout.splitlines()]


def phrase_options(phrases: list[str]) -> list[str]:
    return [arg for phrase in phrases for arg in ("--boost-phrase", phrase)]


def transcribe(client: OpenAI, model: str, audio: Path, body: dict | None = None, **options):
    with audio.open("rb") as handle:
        return client.audio.transcriptions.create(
            model=model, file=handle, extra_body=body or {}, **options
        )


def words(verbose) -> list[tuple[str, float, float]]:
    return [(w.word, w.start, w.end) for w in verbose.words]


def cli_words(result: dict) -> list[tuple[str, float, float]]:
    return [(w["text"], w["start"], w["end"]) for w in result["words"]]


def test_canary_boost_equals_canary_boost_phrase(client, server, cache_dir):
    """Text as `canary --boost-phrase ...` (the checkpoint's beam search with NeMo's tree
    fused), on clips where the phrases change it; without `boost`, the plain text. Sent at
    once, the boosted requests share rounds and still get the CLI's text."""
    boosted = cli("canary", str(CANARY_FIXTURE), CANARY_CLIPS, cache_dir,
                  *phrase_options(CANARY_PHRASES))  # fmt: skip
    plain = cli("canary", str(CANARY_FIXTURE), CANARY_CLIPS, cache_dir)
    body = {"boost": CANARY_PHRASES}
    changed = 0
    for clip, expected, before in zip(CANARY_CLIPS, boosted, plain, strict=True):
        assert transcribe(client, "canary", clip, body).text == expected["text"], clip.name
        assert transcribe(client, "canary", clip).text == before["text"], clip.name
        changed += expected["text"] != before["text"]
    assert changed, "the phrases change no clip: nothing is proved"
    with ThreadPoolExecutor(len(CANARY_CLIPS)) as pool:
        together = list(pool.map(lambda c: transcribe(client, "canary", c, body), CANARY_CLIPS))
    assert [r.text for r in together] == [r["text"] for r in boosted]
    assert httpx.get(f"{server.url}/health").json()["batches"]["canary"]["largest_round"] > 1


def test_canary_boost_weights_and_timestamps_equal_the_cli(client, cache_dir):
    """`boost_score` / `boost_alpha` are the CLI's --boost-score / --boost-alpha; the words
    of verbose_json are those of `canary --timestamps --boost-phrase ...`."""
    clip = CANARY_CLIPS[0]
    weights = {"boost_score": 2.5, "boost_alpha": 0.5}
    (expected,) = cli("canary", str(CANARY_FIXTURE), [clip], cache_dir, "--timestamps",
                      "--boost-score", "2.5", "--boost-alpha", "0.5",
                      *phrase_options(CANARY_PHRASES))  # fmt: skip
    verbose = transcribe(client, "canary", clip, {"boost": CANARY_PHRASES, **weights},
                         response_format="verbose_json", timestamp_granularities=["word"])  # fmt: skip
    assert verbose.text == expected["text"]
    assert words(verbose) == cli_words(expected)
    assert expected["words"]


def test_word_spotter_equals_parakeet_word_spotter(client, cache_dir):
    """Text and word times as `parakeet --word-spotter --boost-phrase ...`, and NeMo's merged
    text, on the clips where NeMo's spotter changed the demo model's; without the field the
    same phrases are boosted, not spotted, and no field at all gives the plain text."""
    clips = [FIXTURES / "demo" / clip for clip in SPOTTER_CLIPS]
    phrases = phrase_options(SPOTTER_PHRASES)
    spotted = cli("parakeet", "demo", clips, cache_dir, "--word-spotter", *phrases)
    boosted = cli("parakeet", "demo", clips, cache_dir, *phrases)
    for name, clip, expected, by_boost in zip(SPOTTER_CLIPS, clips, spotted, boosted, strict=True):
        body = {"boost": SPOTTER_PHRASES, "word_spotter": True}
        verbose = transcribe(client, "demo", clip, body, response_format="verbose_json",
                             timestamp_granularities=["word"])  # fmt: skip
        assert verbose.text == expected["text"] == SPOTTED["clips"][name]["tdt_text"], name
        assert words(verbose) == cli_words(expected), name
        assert transcribe(client, "demo", clip).text == SPOTTED["clips"][name]["plain_tdt_text"]
        boost = transcribe(client, "demo", clip, {"boost": SPOTTER_PHRASES})
        assert boost.text == by_boost["text"], name


def test_word_spotter_score_is_the_clis_boost_score(client, cache_dir):
    clip = FIXTURES / "demo" / SPOTTER_CLIPS[0]
    (expected,) = cli("parakeet", "demo", [clip], cache_dir, "--word-spotter", "--boost-score",
                      "6", *phrase_options(SPOTTER_PHRASES))  # fmt: skip
    body = {"boost": SPOTTER_PHRASES, "word_spotter": "true", "boost_score": 6}
    assert transcribe(client, "demo", clip, body).text == expected["text"]


def test_spotting_boosting_and_plain_requests_never_share_a_round(client):
    """The same phrases spotted, boosted, and none, sent at once: each answer is the one
    it gets alone (a round takes only requests with equal options)."""
    clips = [FIXTURES / "demo" / clip for clip in SPOTTER_CLIPS[:3]]
    bodies = [{"boost": SPOTTER_PHRASES, "word_spotter": True}, {"boost": SPOTTER_PHRASES}, {}]
    once = [(clip, body) for clip in clips for body in bodies]
    alone = {(c.name, json.dumps(b)): transcribe(client, "demo", c, b).text for c, b in once}
    jobs = once * 2
    with ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(lambda job: transcribe(client, "demo", *job).text, jobs))
    for (clip, body), text in zip(jobs, together, strict=True):
        assert text == alone[(clip.name, json.dumps(body))], (clip.name, body)
    assert len(set(alone.values())) > len(clips), "spotting, boosting and none all alike"


def test_boost_on_a_greedy_canary_checkpoint_is_refused_as_by_the_cli(client, greedy_canary):
    """`canary --boost-phrase` refuses a checkpoint that decodes greedily (NeMo fuses only
    in beam search); the server answers the same request with a 400, and serves it plain."""
    clip = CANARY_CLIPS[0]
    command = [sys.executable, "-m", "nemo_mlx_canary.cli", "--model", str(greedy_canary),
               "--quiet", "--boost-phrase", "Stella", str(clip)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "phrase boosting and LM fusion need beam decoding" in result.stderr
    with pytest.raises(openai.BadRequestError) as refused:
        transcribe(client, "canary-greedy", clip, {"boost": ["Stella"]})
    assert refused.value.body["param"] == "boost"
    assert refused.value.body["message"] == (
        "model 'canary-greedy' decodes greedily (its checkpoint's decoding) and NeMo boosts "
        "phrases only in beam search"
    )
    assert transcribe(client, "canary-greedy", clip).text == transcribe(client, "canary", clip).text


@pytest.mark.parametrize(
    ("model", "body", "param", "message"),
    [
        ("rnnt", {"boost": ["anna"], "word_spotter": True}, "word_spotter",
         "model 'rnnt' has no CTC head: the word spotter needs a CTC or hybrid Parakeet model"),
        ("canary", {"boost": ["anna"], "word_spotter": True}, "word_spotter",
         "model 'canary' has no CTC head"),
        ("demo", {"word_spotter": True}, "word_spotter",
         "word_spotter spots the request's boost phrases: give boost"),
        ("demo", {"boost": ["anna"], "word_spotter": True, "boost_alpha": 1}, "boost_alpha",
         "word_spotter takes boost phrases and boost_score only (no boost_alpha)"),
        ("demo", {"boost": ["anna_"], "word_spotter": True}, "boost",
         "model 'demo': word spotter phrase 'anna_': give it as word_spelling"),
        ("demo", {"boost": ["anna"], "word_spotter": "maybe"}, "word_spotter",
         "word_spotter: Input should be a valid boolean"),
        ("canary", {"boost": ["anna"], "boost_score": 0}, "boost_score",
         "boost_score: Input should be greater than 0"),
        ("canary", {"boost": [f"phrase {i}" for i in range(1001)]}, "boost",
         "boost: List should have at most 1000 items"),
    ],
)  # fmt: skip
def test_bad_domain_word_requests_are_one_clear_400(client, model, body, param, message):
    clip = CANARY_CLIPS[0]
    with pytest.raises(openai.BadRequestError) as refused:
        transcribe(client, model, clip, body)
    error = refused.value.body
    assert error["param"] == param
    assert error["message"].startswith(message)
    assert "\n" not in error["message"]
