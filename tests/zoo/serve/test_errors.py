"""Bad input against a real server: every malformed request gets a 4xx in OpenAI's error shape (never a 5xx),
and the same process then still answers a valid request."""

import io
import struct
import subprocess
import sys

import numpy as np
import pytest
import requests
from PIL import Image

from tests.zoo.serve.conftest import AUDIO, ROOT, free_port


def wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    """A 16-bit mono PCM WAV file."""
    pcm = samples.astype("<i2").tobytes()
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(pcm), b"WAVE", b"fmt ", 16, 1, 1, rate,
                         rate * 2, 2, 16, b"data", len(pcm))
    return header + pcm


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 128, 255)).save(buffer, "PNG")
    return buffer.getvalue()


RANDOM = np.random.default_rng(0).bytes(4000)
SPEECH = (AUDIO / "numbers.wav").read_bytes()


def malformed(generator: str) -> list[tuple[str, dict]]:
    """(endpoint, requests keyword arguments) for 50 requests that must be refused."""
    t, e, c = "/v1/audio/transcriptions", "/v1/embeddings", "/v1/completions"
    cap, cls = "/v1/images/captions", "/v1/images/classifications"
    audio = [("random.wav", RANDOM), ("empty.wav", b""), ("image.wav", png()), ("cut.wav", SPEECH[:30]),
             ("text.mp3", b"hello " * 100), ("header_only.wav", SPEECH[:44][:40]), ("zeros.flac", bytes(2000))]
    cases = [(t, {"files": {"file": (name, data)}, "data": {"model": "tiny.en"}}) for name, data in audio]
    fields = [{"model": "nope"}, {"model": "tiny.en", "response_format": "xml"},
              {"model": "tiny.en", "temperature": "hot"}, {"model": "tiny.en", "temperature": "7"},
              {"model": "tiny.en", "temperature": "nan"},
              {"model": "tiny.en", "timestamp_granularities[]": "character"},
              {"model": "tiny.en", "timestamp_granularities[]": "segment", "response_format": "json"},
              {"model": "tiny.en", "language": "fr"}, {"model": "minilm_l6"}]
    cases += [(t, {"files": {"file": ("a.wav", SPEECH)}, "data": data}) for data in fields]
    cases += [(t, {"data": {"model": "tiny.en"}}),  # no file
              (t, {"data": {"model": "tiny.en", "file": "not a file"}}),
              (t, {"json": {"model": "tiny.en", "file": "x"}}),  # not multipart
              (t, {"files": {"file": ("big.wav", bytes(3 * 2**20))}}),  # over --max-upload-mb 2
              (t, {"data": b"x" * (3 * 2**20), "headers": {"content-type": "application/octet-stream"}})]
    bodies = [{"model": "minilm_l6"}, {"model": "minilm_l6", "input": 123}, {"model": "minilm_l6", "input": []},
              {"model": "minilm_l6", "input": [1, 2, 3]}, {"model": "minilm_l6", "input": ["ok", ""]},
              {"model": "minilm_l6", "input": "x", "encoding_format": "hex"},
              {"model": "minilm_l6", "input": ["x"] * 301}, {"model": "minilm_l6", "input": "x", "dimensions": 12},
              {"model": "text-embedding-3-small", "input": "x"}, {"model": ["minilm_l6"], "input": "x"}]
    cases += [(e, {"json": body}) for body in bodies]
    cases += [(e, {"data": b"{not json", "headers": {"content-type": "application/json"}}),
              (e, {"data": b"[1, 2]", "headers": {"content-type": "application/json"}})]
    prompts = [{}, {"prompt": 5}, {"prompt": "x", "max_tokens": "many"}, {"prompt": "x", "max_tokens": 65},
               {"prompt": "x", "max_tokens": 0}, {"prompt": "x", "top_p": 5}, {"prompt": "x", "stop": [1]},
               {"prompt": "x", "n": 3}, {"prompt": "x", "temperature": -1}, {"prompt": "x", "seed": "s"}]
    cases += [(c, {"json": {"model": generator, **body}}) for body in prompts]
    cases += [(c, {"json": {"model": "gpt-4", "prompt": "x"}})]
    cases += [(cap, {"files": {"file": ("a.png", b"not an image")}}), (cap, {"files": {"file": ("a.png", b"")}}),
              (cap, {"files": {"file": ("a.png", SPEECH)}}), (cap, {"data": {"attention": "maybe"},
                                                                     "files": {"file": ("a.png", png())}}),
              (cls, {"files": {"file": ("a.png", png()[:40])}}), (cls, {"data": {"top_k": "0"},
                                                                      "files": {"file": ("a.png", png())}})]
    return cases


def test_fifty_malformed_requests_get_4xx_in_openai_shape(server, generator_dir):
    cases = malformed(generator_dir.name)
    assert len(cases) == 50
    for path, kwargs in cases:
        response = requests.post(server.url + path, timeout=120, **kwargs)
        assert 400 <= response.status_code < 500, (path, kwargs.get("data"), response.text)
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, response.text
        assert error["message"] and "\n" not in error["message"] and "Traceback" not in error["message"]
    ok = requests.post(server.url + "/v1/embeddings", json={"model": "minilm_l6", "input": "still here"},
                       timeout=60)
    assert ok.status_code == 200 and len(ok.json()["data"][0]["embedding"]) == 384


@pytest.mark.parametrize(("path", "kwargs", "status", "words"), [
    ("/v1/audio/transcriptions", {"files": {"file": ("r.wav", RANDOM)}}, 415, "not a readable audio file"),
    ("/v1/audio/transcriptions", {"files": {"file": ("big.wav", bytes(3 * 2**20))}}, 413, "--max-upload-mb"),
    ("/v1/embeddings", {"json": {"model": "ada", "input": "x"}}, 404, "served: minilm_l6"),
    ("/v1/embeddings", {"json": {"input": 3}}, 400, "input must be"),
    ("/v1/nothing", {}, 404, "no route"),
])
def test_statuses_and_messages_say_what_is_wrong(server, path, kwargs, status, words):
    response = requests.post(server.url + path, timeout=60, **kwargs)
    assert response.status_code == status and words in response.json()["error"]["message"], response.text


def test_a_body_without_length_is_cut_off_at_the_limit(server):
    chunks = (bytes(2**16) for _ in range(64))  # 4 MB sent chunked, with no Content-Length to refuse early
    response = requests.post(server.url + "/v1/embeddings", data=chunks, timeout=60,
                             headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"


def test_a_wav_header_with_random_pcm_is_noise_not_an_error(server):
    noise = np.random.default_rng(1).integers(-20000, 20000, 16000)
    response = requests.post(server.url + "/v1/audio/transcriptions", timeout=120,
                             files={"file": ("noise.wav", wav(noise))}, data={"response_format": "verbose_json"})
    assert response.status_code == 200 and response.json()["duration"] == pytest.approx(1.0)


def test_bad_flags_are_one_line_errors(tmp_path, capsys):
    from zoo.cli import main

    assert main(["serve", "--generator", str(tmp_path / "missing")]) == 2
    assert main(["serve", "--queue-size", "0"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"zoo serve: error: --generator {tmp_path / 'missing'}: no such folder",
                     "zoo serve: error: --max-upload-mb, --max-audio-seconds, --max-tokens, --max-embedding-inputs, "
                     "--queue-size, --embedding-queue-size and --embedding-batch must be positive"]


def test_a_model_that_cannot_be_served_ends_the_server_with_one_line():
    proc = subprocess.run([sys.executable, "-m", "zoo", "serve", "--port", str(free_port()), "--models",
                           "tiny.en,whisper_large_v3"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("zoo serve: error: --models whisper_large_v3: nothing by that name") and "tiny.en" in last
