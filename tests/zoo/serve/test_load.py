"""Load and faults against real servers, in small fixed counts (the full-size figures are printed by
benchmarks/serve.py): concurrent embeddings batched to the same vectors, an embedding served between
transcriptions, bounded queues answering 429, clients that give up, the API key, and SIGTERM with requests in
flight. Assertions are on outcomes and order, never on wall time."""

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

import zoo
from tests.zoo.serve.conftest import AUDIO, lane, running, wait_until

CLIP = (AUDIO / "numbers.wav").read_bytes()


def transcribe(url: str, headers=None, timeout=300):
    response = requests.post(url + "/v1/audio/transcriptions", files={"file": ("numbers.wav", CLIP)},
                             data={"model": "tiny.en"}, headers=headers, timeout=timeout)
    return response, time.monotonic()


def test_concurrent_embeddings_are_batched_to_the_vectors_of_one_at_a_time(server):
    sentences = [f"Request number {i} asks about {'cats' if i % 2 else 'the weather'} today." for i in range(60)]
    alone = [requests.post(server.url + "/v1/embeddings", json={"model": "minilm_l6", "input": s},
                           timeout=60).json()["data"][0]["embedding"] for s in sentences[:6]]
    before = lane(server, "embedding")["done"]
    with ThreadPoolExecutor(60) as pool:
        futures = [pool.submit(requests.post, server.url + "/v1/embeddings",
                               json={"model": "minilm_l6", "input": s}, timeout=120) for s in sentences]
        health = [requests.get(server.url + "/health", timeout=30).status_code for _ in range(10)]
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [200] * 60 and health == [200] * 10
    vectors = np.array([a.json()["data"][0]["embedding"] for a in answers])
    np.testing.assert_allclose(vectors[:6], np.array(alone), atol=1e-5)
    np.testing.assert_allclose(vectors, zoo.embed(sentences).numpy(), atol=1e-5)
    stats = lane(server, "embedding")
    assert stats["done"] - before == 60 and stats["queued"] == 0


def test_an_embedding_is_served_between_queued_transcriptions(server):
    expected = zoo.transcribe(str(AUDIO / "numbers.wav"))["text"].strip()
    with ThreadPoolExecutor(6) as pool:
        jobs = [pool.submit(transcribe, server.url) for _ in range(5)]
        wait_until(lambda: lane(server, "transcription")["queued"] >= 3, what="the transcription queue")
        embedding = requests.post(server.url + "/v1/embeddings", json={"model": "minilm_l6", "input": "now"},
                                  timeout=120)
        embedded_at = time.monotonic()
        results = [job.result() for job in jobs]
    assert embedding.status_code == 200
    assert [r.json()["text"] for r, _ in results] == [expected] * 5
    # the lanes take turns: the embedding did not wait for the queue of transcriptions ahead of it
    assert sum(done_at > embedded_at for _, done_at in results) >= 2


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """tiny.en alone behind an API key, with room for 2 waiting transcriptions."""
    with running(["--models", "tiny.en", "--queue-size", "2", "--api-key", "sesame"],
                 tmp_path_factory.mktemp("serve") / "small.log") as server:
        yield server


KEY = {"Authorization": "Bearer sesame"}


def test_health_says_loading_until_the_models_are_warm(small_server):
    assert small_server.health_seen == [(503, {"status": "loading"}), (200, {"status": "ok"})]


def test_the_api_key_guards_v1_but_not_health(small_server):
    assert requests.get(small_server.url + "/health", timeout=10).status_code == 200
    for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": "sesame"}):
        refused = requests.get(small_server.url + "/v1/models", headers=headers, timeout=10)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert requests.get(small_server.url + "/v1/models", headers=KEY, timeout=10).json()["data"][0]["id"] == "tiny.en"


def test_a_full_queue_answers_429_with_retry_after(small_server):
    with ThreadPoolExecutor(8) as pool:
        answers = [r for r, _ in pool.map(lambda _: transcribe(small_server.url, KEY), range(8))]
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 429} and statuses.count(200) >= 3 and statuses.count(429) >= 1
    refused = next(a for a in answers if a.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1 and refused.json()["error"]["type"] == "rate_limit_error"


def test_clients_that_give_up_leave_no_work_behind(small_server):
    before = lane(small_server, "transcription")
    with ThreadPoolExecutor(3) as pool:
        for answer in pool.map(lambda _: _give_up(small_server.url), range(3)):
            assert answer == "gave up"
    wait_until(lambda: not lane(small_server, "transcription")["queued"], what="the queue")
    after = lane(small_server, "transcription")
    # at most the one job already running when its client left was run; the queued ones were dropped
    assert after["done"] - before["done"] <= 1 and after["dropped"] - before["dropped"] >= 2
    assert transcribe(small_server.url, KEY)[0].status_code == 200


def _give_up(url: str) -> str:
    try:
        transcribe(url, KEY, timeout=0.3)
    except requests.Timeout:
        return "gave up"
    return "answered"


def test_sigterm_finishes_the_requests_in_flight(tmp_path):
    with running(["--models", "tiny.en"], tmp_path / "term.log") as server:
        with ThreadPoolExecutor(3) as pool:
            jobs = [pool.submit(transcribe, server.url) for _ in range(3)]
            # SIGTERM once all three have reached the server (one running, the others queued)
            wait_until(lambda: sum(lane(server, "transcription")[k] for k in ("queued", "running", "done")) == 3,
                       what="three transcriptions in flight")
            server.proc.send_signal(signal.SIGTERM)
            answers = [job.result()[0] for job in jobs]
        assert [a.status_code for a in answers] == [200] * 3
        assert server.proc.wait(60) in (0, -signal.SIGTERM)  # uvicorn ends by re-raising the signal it caught
        assert "Traceback" not in server.log.read_text()
        with pytest.raises(requests.ConnectionError):
            requests.get(server.url + "/health", timeout=5)
