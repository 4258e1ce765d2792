"""The page of `zoo serve` in a real headless Chromium, driven as a person uses it: upload a recording and read
its transcript, compare three sentences, caption a scene and look at its attention map. Each tab's screenshot
is written under output/. Needs Debian's `chromium` and `chromium-driver` (`make test` installs them)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import requests
import torch
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

import zoo
from vision.shapes import ShapesDataset
from zoo.train import checkpoint
from zoo.train.caption_inference import caption_files, load_captioner
from zoo.train.data import DataConfig
from zoo.train.inference import classify_files, load_classifier

pytestmark = pytest.mark.slow  # real Whisper and MiniLM weights behind a real server and browser

ROOT = Path(__file__).resolve().parents[3]
WAV = ROOT / "examples" / "audio" / "numbers.wav"
CAPTIONER = ROOT / "examples" / "caption" / "captioner_tiny_shapes"
SHOTS = ROOT / "output"
CLASSES = ["circle", "cross", "diamond", "square", "triangle"]
SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The sky is blue today."]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"zoo serve exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass  # not listening yet, or 503 while the models load
        time.sleep(0.3)
    pytest.fail(f"zoo serve did not become healthy within {timeout:.0f} s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def scored_classifier(tmp_path_factory) -> Path:
    """A `zoo train` run folder of the tiny ViT with random weights, written by the engine's checkpoint
    writer: its classes are nonsense, but the page must show exactly what the model says."""
    run = tmp_path_factory.mktemp("classifier") / "shapes_vit"
    torch.manual_seed(0)
    model = zoo.create_model("vit_test", num_classes=len(CLASSES))
    torch.nn.init.normal_(model.head.fc.weight)  # the head starts at zero: unequal scores need a random one
    data = DataConfig(img_size=16, in_chans=3, mean=(0.5,) * 3, std=(0.5,) * 3, interpolation="bicubic",
                      crop_pct=1.0)
    meta = {"model": "vit_test", "model_overrides": {"num_classes": len(CLASSES)}, "classes": CLASSES,
            "data": data.__dict__}
    checkpoint.save(run, "e0001", model, None, meta, {}, best=True)
    return run


@pytest.fixture(scope="module")
def page_server(scored_classifier, tmp_path_factory):
    """A real `zoo serve` on a free local port: speech, embeddings, the shipped captioner, a classifier."""
    port = _free_port()
    command = [sys.executable, "-m", "zoo", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--models", "tiny.en,minilm_l6,captioner_tiny_shapes", "--classifier", str(scored_classifier)]
    log = tmp_path_factory.mktemp("page_server") / "stderr.log"
    with open(log, "w") as stderr:  # a file, not a pipe nobody reads while the server runs
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "ZOO_NUM_THREADS": "1"},
                                   stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log, timeout=240)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail("the browser test needs Chromium: apt-get install -y chromium chromium-driver "
                    "(`make test` installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(flag)
    # an explicit driver path: selenium then never tries to download one
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module")
def page(page_server, browser):
    """The page loaded, its models listed from the server."""
    browser.get(page_server + "/")
    WebDriverWait(browser, 30).until(lambda b: b.find_element("tag name", "body").get_attribute("data-models"))
    return browser


def _open_tab(browser, name: str):
    browser.find_element("id", f"tab-{name}").click()
    return browser.find_element("id", f"panel-{name}")


def _submit(browser, name: str, timeout: float = 60) -> str:
    """Press the panel's button and wait until its request ended: "done" or "error"."""
    browser.find_element("id", f"{name}-run").click()
    panel = browser.find_element("id", f"panel-{name}")
    return WebDriverWait(browser, timeout).until(
        lambda _: panel.get_attribute("data-state") if panel.get_attribute("data-state") in ("done", "error")
        else None)


def _submit_and_wait(browser, name: str) -> None:
    """Submit, and fail with the page's one-line error if the request did not succeed."""
    assert _submit(browser, name) == "done", browser.find_element("id", f"{name}-error").text


def _clock(seconds: float) -> str:
    """The page's m:ss.ss."""
    minutes = int(seconds // 60)
    return f"{minutes}:{seconds - 60 * minutes:05.2f}"


def _screenshot(browser, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(SHOTS / f"serve_{name}.png"))


def test_transcribe_tab_shows_the_in_process_transcript(page):
    _open_tab(page, "transcribe")
    page.find_element("id", "transcribe-file").send_keys(str(WAV))
    _submit_and_wait(page, "transcribe")
    expected = zoo.transcribe(str(WAV), model="tiny.en")
    shown = page.find_element("id", "transcribe-text").text
    assert " ".join(shown.split()) == " ".join(expected["text"].split())
    rows = [[td.text for td in row.find_elements("tag name", "td")]
            for row in page.find_elements("css selector", "#transcribe-segments tbody tr")]
    assert [(start, end) for _, start, end, _ in rows] == [(_clock(s["start"]), _clock(s["end"]))
                                                           for s in expected["segments"]]
    _screenshot(page, "transcribe")


def test_similarity_tab_shows_the_cosine_matrix(page):
    _open_tab(page, "similarity")
    box = page.find_element("id", "similarity-input")
    box.clear()
    box.send_keys("\n".join(SENTENCES))
    _submit_and_wait(page, "similarity")
    rows = page.find_elements("css selector", "#similarity-matrix tr")[1:]  # the first row numbers the columns
    shown = [[float(td.text) for td in row.find_elements("tag name", "td")] for row in rows]
    vectors = zoo.embed(SENTENCES)
    expected = (vectors @ vectors.T).tolist()
    assert len(shown) == 3 and all(len(row) == 3 for row in shown)
    for i in range(3):
        assert rows[i].find_elements("tag name", "td")[i].text == "1.00"
        for j in range(3):
            assert abs(shown[i][j] - expected[i][j]) <= 0.005 + 1e-4  # shown with two decimals
    _screenshot(page, "similarity")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A test-split shape scene as a PNG file and the caption the shipped captioner gives it in this process."""
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    image, _ = ShapesDataset("test", size=1, img_size=48)[0]
    image.save(path)
    captioner = load_captioner(CAPTIONER, device="cpu")
    with torch.inference_mode():
        [(_, (caption, _, _, _))] = list(caption_files(captioner, [str(path)]))
    return path, caption


def test_caption_tab_shows_the_caption_and_its_attention_map(page, scene):
    path, caption = scene
    _open_tab(page, "caption")
    page.find_element("id", "caption-file").send_keys(str(path))
    assert page.find_element("id", "caption-attention").is_selected()  # the map is asked for by default
    _submit_and_wait(page, "caption")
    assert page.find_element("id", "caption-text").text == caption
    loaded = "const img = document.getElementById('caption-map'); return img.complete ? img.naturalWidth : 0;"
    assert WebDriverWait(page, 10).until(lambda b: b.execute_script(loaded)) > 0
    _screenshot(page, "caption")


def test_classify_tab_shows_the_top_classes(page, scene, scored_classifier):
    path, _ = scene
    _open_tab(page, "classify")
    page.find_element("id", "classify-file").send_keys(str(path))
    top_k = page.find_element("id", "classify-top-k")
    top_k.clear()
    top_k.send_keys("3")
    _submit_and_wait(page, "classify")
    rows = [row.find_elements("tag name", "td") for row in
            page.find_elements("css selector", "#classify-classes tbody tr")]
    [(_, expected)] = list(classify_files(load_classifier(scored_classifier, device="cpu"), [str(path)], topk=3))
    assert [cells[0].text for cells in rows] == [label for label, _ in expected]
    shown = [float(cells[1].text.rstrip("%")) for cells in rows]
    assert all(abs(s - 100 * p) <= 0.05 + 1e-3 for s, (_, p) in zip(shown, expected))  # one decimal shown
    _screenshot(page, "classify")


def test_a_bad_upload_shows_the_servers_error_in_one_line(page, page_server, tmp_path):
    not_audio = tmp_path / "notes.wav"
    not_audio.write_bytes(b"these bytes are not audio at all" * 10)
    _open_tab(page, "transcribe")
    page.find_element("id", "transcribe-file").send_keys(str(not_audio))
    assert _submit(page, "transcribe") == "error"
    answer = requests.post(f"{page_server}/v1/audio/transcriptions", data={"model": "tiny.en"},
                           files={"file": ("notes.wav", not_audio.read_bytes())}, timeout=30)
    assert answer.status_code == 415
    server_says = answer.json()["error"]["message"].splitlines()[0].strip()
    assert page.find_element("id", "transcribe-error").text == server_says
