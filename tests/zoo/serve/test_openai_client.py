"""The official `openai` client, unchanged, against a real `zoo serve`: the same transcripts as
zoo.transcribe, the same vectors as zoo.embed, completions with and without streaming, and zoo's image
endpoints."""

import base64
import io
import json
import re

import numpy as np
import openai
import pytest
import requests
from PIL import Image

import zoo
from shared.generation import Greedy, Sample
from tests.zoo.serve.conftest import AUDIO
from text.generate import generate_text
from text.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def expected():
    return zoo.transcribe(str(AUDIO / "numbers.wav"))


def transcribe(client, response_format, **kwargs):
    with open(AUDIO / "numbers.wav", "rb") as f:
        return client.audio.transcriptions.create(model="tiny.en", file=f, response_format=response_format,
                                                  **kwargs)


def test_models_lists_every_family(client, generator_dir, classifier_run):
    served = {m.id: m.model_extra["task"] for m in client.models.list()}
    assert served == {"tiny.en": "transcription", "minilm_l6": "embedding", "captioner_tiny_shapes": "caption",
                      generator_dir.name: "completion", classifier_run.name: "classification"}


def test_transcripts_equal_zoo_transcribe_in_every_format(client, expected):
    text = expected["text"].strip()
    assert transcribe(client, "json").text == text
    assert transcribe(client, "text").strip() == text
    verbose = transcribe(client, "verbose_json", timestamp_granularities=["segment"])
    assert verbose.text == text and verbose.language == "en" and verbose.duration == pytest.approx(3.18, abs=0.01)
    assert [(s.start, s.end, s.text) for s in verbose.segments] == [
        (s["start"], s["end"], s["text"]) for s in expected["segments"]]
    srt, vtt = transcribe(client, "srt"), transcribe(client, "vtt")
    first = expected["segments"][0]
    assert srt.startswith("1\n00:00:00,000 --> ") and first["text"].strip() in srt
    assert vtt.startswith("WEBVTT\n\n00:00.000 --> ") and first["text"].strip() in vtt


def test_word_timestamps_are_zoo_transcribes(client):
    expected = zoo.transcribe(str(AUDIO / "numbers.wav"), word_timestamps=True)
    verbose = transcribe(client, "verbose_json", timestamp_granularities=["word", "segment"])
    words = [(w["word"], w["start"], w["end"]) for s in expected["segments"] for w in s["words"]]
    assert [(w.word, w.start, w.end) for w in verbose.words] == words and len(words) >= 5
    assert verbose.text == expected["text"].strip()


def test_embeddings_equal_zoo_embed_in_both_encodings(client):
    sentences = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
    reference = zoo.embed(sentences).numpy()
    as_float = client.embeddings.create(model="minilm_l6", input=sentences, encoding_format="float")
    np.testing.assert_allclose(np.array([d.embedding for d in as_float.data]), reference, atol=1e-5)
    default = client.embeddings.create(model="minilm_l6", input=sentences)  # the client asks for base64
    np.testing.assert_allclose(np.array([d.embedding for d in default.data]), reference, atol=1e-5)
    raw = requests.post(client.base_url.join("embeddings").__str__(), timeout=60,
                        json={"model": "minilm_l6", "input": sentences[0], "encoding_format": "base64"}).json()
    vector = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vector, reference[0], atol=1e-5)
    assert as_float.usage.prompt_tokens > len(sentences)


def test_completions_with_and_without_streaming(client, generator_dir):
    model, tok = zoo.load_pretrained(generator_dir).eval(), Tokenizer.from_dir(generator_dir)
    name = generator_dir.name
    greedy = client.completions.create(model=name, prompt="The quick brown", max_tokens=10, temperature=0)
    assert greedy.choices[0].text == generate_text(model, tok, "The quick brown", 10, selector=Greedy()).text
    assert greedy.choices[0].finish_reason == "length" and greedy.usage.completion_tokens == 10
    sampled = client.completions.create(model=name, prompt="Attention", max_tokens=8, temperature=1.2,
                                        top_p=0.9, seed=3)
    assert sampled.choices[0].text == generate_text(model, tok, "Attention", 8,
                                                    selector=Sample(1.2, None, 0.9, 3)).text
    stream = client.completions.create(model=name, prompt="The quick brown", max_tokens=10, temperature=0,
                                       stream=True)
    chunks = list(stream)
    assert len(chunks) > 2 and "".join(c.choices[0].text for c in chunks) == greedy.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"
    full = greedy.choices[0].text
    stop = full[len(full) // 2:len(full) // 2 + 2]
    cut = client.completions.create(model=name, prompt="The quick brown", max_tokens=10, temperature=0,
                                    stop=[stop])
    assert cut.choices[0].text == full[:full.index(stop)] and cut.choices[0].finish_reason == "stop"


def test_sse_ends_with_done(server, generator_dir):
    body = {"model": generator_dir.name, "prompt": "Hello", "max_tokens": 4, "temperature": 0, "stream": True}
    with requests.post(server.url + "/v1/completions", json=body, stream=True, timeout=60) as r:
        events = [line for line in r.iter_lines(decode_unicode=True) if line]
    assert r.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)
    assert json.loads(events[-2][6:])["choices"][0]["finish_reason"] == "length"


def scene_png() -> bytes:
    """A scene like the captioner's training data: one red square on a black background."""
    image = Image.new("RGB", (48, 48))
    image.paste((255, 0, 0), (16, 16, 32, 32))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_captions_with_the_attention_map_and_classifications(server, classifier_run):
    from zoo.train.caption_inference import caption_files, load_captioner

    files = {"file": ("scene.png", scene_png(), "image/png")}
    plain = requests.post(server.url + "/v1/images/captions", files=files, timeout=60).json()
    with_map = requests.post(server.url + "/v1/images/captions", files=files, data={"attention": "true"},
                             timeout=60).json()
    assert plain["model"] == "captioner_tiny_shapes" and plain["attention_png"] is None
    path = server.log.parent / "scene.png"
    path.write_bytes(scene_png())
    [(_, (caption, *_))] = caption_files(load_captioner(zoo_captioner()), [str(path)])
    assert plain["caption"] == with_map["caption"] == caption
    assert Image.open(io.BytesIO(base64.b64decode(with_map["attention_png"]))).format == "PNG"
    classes = requests.post(server.url + "/v1/images/classifications", files=files, data={"top_k": "2"},
                            timeout=60).json()
    assert classes["model"] == classifier_run.name and len(classes["classes"]) == 2
    scores = [c["score"] for c in classes["classes"]]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    assert {c["label"] for c in classes["classes"]} <= {"cat", "dog", "fish"}


def zoo_captioner():
    from zoo.shipped import SHIPPED_CAPTIONER

    return SHIPPED_CAPTIONER


def test_health_is_ok_once_ready(server):
    answer = requests.get(server.url + "/health", timeout=10)
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}
    assert re.match(r"zoo serve: \d+ threads? \(", server.log.read_text())  # its first line: the thread count
