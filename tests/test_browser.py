"""The search page in a real browser (Debian chromium + chromedriver, headless): type, Play, seek.

Skips with the reason when no browser is installed. `TALKINDEX_SCREENSHOT=docs/screenshot.png`
also saves the results page there (the README's screenshot is made by this code path).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import ROOT
from test_server import get_json, serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
QUESTION = "what is feature store drift"


def _browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
              "--autoplay-policy=no-user-gesture-required", "--window-size=1200,900", "--disable-extensions",
              "--no-first-run", "--disable-background-networking"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))


@pytest.fixture(scope="module")
def browser():
    d = _browser()
    d.set_page_load_timeout(60)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def server(samples_home):
    with serve(samples_home) as (base, proc, lines):
        yield base


def wait_for(fn, timeout: float = 20.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def media_state(d) -> dict:
    return d.execute_script(
        "const m = document.getElementById('media');"
        "return m ? {t: m.currentTime, paused: m.paused, ready: m.readyState, src: m.currentSrc} : null;")


def search_results(d, base: str, question: str) -> list:
    """Load /, type `question`, submit; returns the hit elements."""
    from selenium.webdriver.common.by import By

    d.get(base + "/")
    box = d.find_element(By.ID, "q")
    box.clear()
    box.send_keys(question)
    d.find_element(By.ID, "go").click()
    return wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#hits .hit"), what="results")


def csp_violations(d) -> list[str]:
    return [e["message"] for e in d.get_log("browser") if "Content Security Policy" in e["message"]]


def test_search_type_and_play(browser, server, tmp_path):
    from selenium.webdriver.common.by import By

    shot = Path(os.environ.get("TALKINDEX_SCREENSHOT") or tmp_path / "results.png")
    if not shot.is_absolute():
        shot = ROOT / shot
    hits = search_results(browser, server, QUESTION)
    assert "q=" in browser.current_url  # the results page is linkable
    api = get_json(server, "/api/ask?q=" + QUESTION.replace(" ", "+"))
    assert len(hits) == len(api)
    assert api[0]["title"] in hits[0].text
    assert hits[0].find_elements(By.TAG_NAME, "mark"), "query terms are highlighted"
    url_before = browser.current_url
    button = hits[0].find_element(By.CSS_SELECTOR, "button.play")
    start = float(button.get_attribute("data-start"))
    assert abs(start - api[0]["start"]) < 1e-6
    button.click()
    state = wait_for(lambda: (s := media_state(browser)) and not s["paused"] and s["t"] > 0 and s,
                     what="the player to start")
    assert abs(state["t"] - start) <= 2.0, (state, start)
    assert browser.current_url == url_before  # played inside the page, no reload
    assert state["src"].startswith(server + "/media/")
    shot.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shot))  # results with the player running: the README's screenshot
    assert shot.stat().st_size > 10_000
    # a second hit's Play seeks the same page's player
    if len(hits) > 1:
        b2 = hits[1].find_element(By.CSS_SELECTOR, "button.play")
        s2 = float(b2.get_attribute("data-start"))
        b2.click()
        state = wait_for(lambda: (s := media_state(browser)) and abs(s["t"] - s2) <= 2.0 and s, what="seek")
    assert not csp_violations(browser)


def test_episode_page_cued_at_t(browser, server):
    from selenium.webdriver.common.by import By

    hit = get_json(server, "/api/ask?q=" + QUESTION.replace(" ", "+") + "&k=1")[0]
    n = int(hit["start"]) + 1
    browser.get(f"{server}/episode/{hit['episode_id']}?t={n}")
    cur = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".sentence.current"), what="highlight")
    assert len(cur) == 1
    s = cur[0]
    st, en = float(s.get_attribute("data-start")), float(s.get_attribute("data-end"))
    nxt = browser.execute_script("const n = arguments[0].nextElementSibling;"
                                 "return n && n.dataset.start ? parseFloat(n.dataset.start) : null;", s)
    assert st <= n and (n <= en or (nxt is not None and n < nxt)), (st, en, nxt, n)
    assert hit["text"].split(".")[0][:20].lower() in browser.find_element(By.ID, "transcript").text.lower()
    in_view = browser.execute_script("const r = arguments[0].getBoundingClientRect();"
                                     "return r.top >= 0 && r.bottom <= window.innerHeight;", s)
    assert in_view, "the page opens scrolled to the sentence"
    state = wait_for(lambda: (m := media_state(browser)) and m["ready"] >= 1 and abs(m["t"] - n) < 0.5 and m,
                     what="player cued at t")
    assert state["paused"]  # cued, not playing
    # clicking another sentence seeks there and plays
    other = browser.find_elements(By.CSS_SELECTOR, ".sentence")[0]
    t0 = float(other.get_attribute("data-start"))
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", other)
    other.find_element(By.CLASS_NAME, "stext").click()
    wait_for(lambda: (m := media_state(browser)) and abs(m["t"] - t0) <= 2.0 and not m["paused"], what="seek")
    assert "current" in other.get_attribute("class")
    # the chapter outline above the transcript seeks the player too
    chapter = browser.find_elements(By.CSS_SELECTOR, "#outline a.seek")[-1]
    tc = float(chapter.get_attribute("data-start"))
    browser.execute_script("document.getElementById('media').currentTime = arguments[0];", tc + 30)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", chapter)  # not under the sticky player
    chapter.click()
    wait_for(lambda: (m := media_state(browser)) and abs(m["t"] - tc) <= 2.0 and not m["paused"], what="chapter seek")
    assert not csp_violations(browser)


def test_docs_page_renders_offline(browser, server):
    from selenium.webdriver.common.by import By

    browser.get(server + "/docs")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock"), what="Swagger UI")
    assert "/api/ask" in browser.find_element(By.ID, "swagger-ui").text
    assert not csp_violations(browser)
