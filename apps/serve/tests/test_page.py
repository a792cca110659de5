"""The page at `/`, in headless Chromium (Playwright) against the real server.

The server runs as a subprocess (`python -m nemo_mlx_serve.cli --model demo`); what the page
shows is checked against what the server answers the same request with over HTTP.

The browser: $CHROMIUM if set, else Debian's chromium (`.ci/run` installs it with apt),
else Playwright's own download. Without one the tests are skipped, except under CI=true,
where a missing browser is a failure."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import Server, running_server

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "apps/parakeet/src/nemo_mlx_parakeet/demo/example.wav"
ARTIFACTS = Path(os.environ.get("PYTEST_ARTIFACTS") or ROOT / "test-artifacts")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true")
# the real binary first: Debian's /usr/bin/chromium is a shell wrapper around it
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")
# a microphone that plays a tone, allowed without asking
FAKE_MIC = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def unavailable(reason: str) -> None:
    """Skip for want of the browser, except in CI, which must have installed it."""
    if IN_CI:
        pytest.fail(f"CI=true, but {reason}")
    pytest.skip(reason)


def transcribe(server: Server, path: Path, response_format: str, **headers: str) -> httpx.Response:
    """The server's own answer for `path`, as the page asks for it."""
    data = {"model": "demo", "response_format": response_format,
            "timestamp_granularities[]": ["word", "segment"]}  # fmt: skip
    with path.open("rb") as f:
        return httpx.post(server.url + "/v1/audio/transcriptions", data=data,
                          files={"file": (path.name, f)}, headers=headers, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server("--model", "demo") as handle:
        yield handle


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Playwright."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        unavailable("the `playwright` package is not installed (the root `dev` group has it)")
    chromium = os.environ.get("CHROMIUM") or next(
        (found for name in CHROMIUM_PATHS if (found := shutil.which(name))), None
    )
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=FAKE_MIC)
        except Error as err:
            unavailable(f"no Chromium could be started ({chromium or 'Playwright`s own'}): {err}")
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server: Server):
    """A fresh page at the server's `/`, recording every request it makes and every console
    error (a CSP violation is one); the test then checks both lists."""
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.requests, page.errors = [], []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(server.url + "/")
    yield page
    context.close()


def only_own_loads(page, server: Server) -> None:
    foreign = [u for u in page.requests if not u.startswith((server.url + "/", "blob:", "data:"))]
    assert not foreign, f"the page loaded from elsewhere: {foreign}"
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


def test_page_headers_forbid_external_loads(server: Server) -> None:
    r = httpx.get(server.url + "/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["x-content-type-options"] == "nosniff"
    csp = dict(
        part.strip().split(" ", 1) for part in r.headers["content-security-policy"].split(";")
    )
    assert csp["default-src"] == "'self'"
    nonce = csp["script-src"].removeprefix("'nonce-").removesuffix("'")
    assert csp["script-src"] == f"'nonce-{nonce}'"
    assert len(nonce) >= 16
    assert f'<script nonce="{nonce}">' in r.text
    assert f'<style nonce="{nonce}">' in r.text
    assert "{{nonce}}" not in r.text
    assert "http://" not in r.text
    assert "https://" not in r.text
    again = httpx.get(server.url + "/").headers["content-security-policy"]
    assert again != r.headers["content-security-policy"]  # a new nonce each time


def test_upload_shows_the_servers_words_and_plays_from_a_word(page, server: Server) -> None:
    expected = transcribe(server, EXAMPLE, "verbose_json")
    assert expected.status_code == 200, expected.text
    verbose = expected.json()
    assert len(verbose["words"]) >= 3

    page.wait_for_selector("#model option[value='demo']", state="attached")
    assert page.eval_on_selector_all("#model option", "os => os.map(o => o.value)") == ["demo"]

    page.set_input_files("#file", str(EXAMPLE))
    page.wait_for_selector("#words .word")
    shown = page.eval_on_selector_all(
        "#words .word",
        "ws => ws.map(w => [w.querySelector('.w').textContent, Number(w.dataset.start),"
        " w.querySelector('.t').textContent])",
    )
    assert [w for w, _, _ in shown] == [w["word"] for w in verbose["words"]]
    assert [s for _, s, _ in shown] == [w["start"] for w in verbose["words"]]
    assert [t for _, _, t in shown] == [f"{w['start']:.2f}" for w in verbose["words"]]
    assert page.inner_text("#error") == ""
    assert "example.wav" in page.inner_text("#status")

    # the audio element plays the uploaded file; a word moves it to that word's start
    page.wait_for_function("() => document.getElementById('audio').readyState >= 1")
    duration = page.eval_on_selector("#audio", "a => a.duration")
    assert duration == pytest.approx(verbose["duration"], abs=1e-3)
    # `seeking` fires with currentTime at the new position (by `seeked`, playback may have
    # moved it on)
    page.evaluate("""() => { window.seeks = [];
        document.getElementById('audio').addEventListener('seeking',
            (e) => window.seeks.push(e.target.currentTime)); }""")
    words = page.locator("#words .word")
    for index, how in ((len(shown) // 2, "click"), (len(shown) - 1, "keyboard")):
        start = verbose["words"][index]["start"]
        before = page.evaluate("() => window.seeks.length")
        if how == "click":
            words.nth(index).click()
        else:  # the words are buttons: Tab-reachable, and Enter works as a click
            words.nth(index).focus()
            page.keyboard.press("Enter")
        page.wait_for_function("n => window.seeks.length > n", arg=before)
        seeked = page.evaluate("() => window.seeks.at(-1)")
        assert seeked == pytest.approx(start, abs=1e-3), (how, index)
        assert page.eval_on_selector("#audio", "a => a.currentTime") >= start - 1e-3

    # downloads: SRT and VTT as the server makes them, JSON the verbose answer itself
    for button, response_format in (("#srt", "srt"), ("#vtt", "vtt")):
        with page.expect_download() as download:
            page.click(button)
        assert download.value.suggested_filename == f"example.{response_format}"
        got = Path(download.value.path()).read_text(encoding="utf-8")
        assert got == transcribe(server, EXAMPLE, response_format).text
    with page.expect_download() as download:
        page.click("#json")
    assert json.loads(Path(download.value.path()).read_text(encoding="utf-8")) == verbose

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-page.png"), full_page=True)
    only_own_loads(page, server)


def test_a_servers_error_is_shown_as_one_line(page, server: Server, tmp_path: Path) -> None:
    fake = tmp_path / "not-audio.wav"
    fake.write_text("this is a text file, not audio\n")
    answer = transcribe(server, fake, "verbose_json")
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]

    page.wait_for_selector("#model option[value='demo']", state="attached")
    page.set_input_files("#file", str(fake))
    page.wait_for_function("() => document.getElementById('error').textContent !== ''")
    shown = page.inner_text("#error")
    assert shown == f"400 Bad Request: {message}"
    assert "\n" not in shown
    assert page.locator("#words .word").count() == 0
    assert not page.is_visible("#result")
    only_own_loads(page, server)


def test_api_key_typed_in_the_page_is_sent(browser, tmp_path: Path) -> None:
    with running_server("--model", "demo", "--api-key", "page-test-key") as keyed:
        page = browser.new_page()
        page.goto(keyed.url + "/")  # the page itself needs no key
        page.wait_for_function("() => document.getElementById('error').textContent !== ''")
        refused = httpx.get(keyed.url + "/v1/models")
        assert refused.status_code == 401
        message = refused.json()["error"]["message"]
        assert page.inner_text("#error") == f"Models: 401 Unauthorized: {message}"
        page.fill("#key", "page-test-key")
        page.locator("#key").blur()  # a change event: the models are asked for again
        page.wait_for_selector("#model option[value='demo']", state="attached")
        assert page.inner_text("#error") == ""
        page.set_input_files("#file", str(EXAMPLE))
        page.wait_for_selector("#words .word")
        page.close()


def test_a_recording_is_sent_as_a_file(browser, server: Server) -> None:
    context = browser.new_context(permissions=["microphone"])
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        page.wait_for_selector("#model option[value='demo']", state="attached")
        record = page.locator("#record")
        record.click()
        page.wait_for_function("() => document.getElementById('status').textContent !== ''")
        assert page.inner_text("#error") == ""
        assert record.get_attribute("aria-pressed") == "true"
        page.wait_for_timeout(1500)  # the fake microphone's tone
        with page.expect_response(lambda r: r.url.endswith("/v1/audio/transcriptions")) as sent:
            record.click()
        assert record.get_attribute("aria-pressed") == "false"
        assert sent.value.status == 200, sent.value.text()
        verbose = sent.value.json()
        assert 1.0 < verbose["duration"] < 10.0
        page.wait_for_selector("#result", state="visible")
        # the status names the file sent (Playwright cannot read a multipart body of a Blob)
        assert re.match(r"recording\.(webm|ogg|m4a): ", page.inner_text("#status"))
        assert page.eval_on_selector("#audio", "a => a.src").startswith("blob:")
        assert page.inner_text("#error") == ""
    finally:
        context.close()
