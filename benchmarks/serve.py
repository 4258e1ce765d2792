"""`zoo serve` under load and faults: a real server on 127.0.0.1 in a subprocess, driven over HTTP.

Prints, in one run: embedding requests/s and p50/p99 one at a time and 200 at once (and their wall-time
ratio: at most 0.6 is the goal), /health p99 during that burst (goal: under 250 ms), a lone transcription,
20 concurrent transcriptions (all equal to zoo.transcribe?) with the latency of an embedding sent among them
(goal: under 2 s), 60 concurrent transcriptions against a queue of 32 (only 200s and 429s?), 15 clients that
give up after 0.3 s and the next request against a lone one (goal: at most 3x), and SIGTERM with requests in
flight (none lost?).

    python -m benchmarks.serve [--threads N] [--embeddings 200] [--transcriptions 20]
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from benchmarks.common import describe_cpu, load_average

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "examples" / "audio" / "numbers.wav"


HEALTH_POLLER = """
import sys, time, requests
try:
    while True:
        sent, start = time.time(), time.perf_counter()
        ok = requests.get(sys.argv[1] + "/health", timeout=30).status_code == 200
        print(sent, time.perf_counter() - start if ok else "inf", flush=True)
        time.sleep(0.02)
except KeyboardInterrupt:
    pass
"""


class Server:
    """`zoo serve` in a subprocess on a free port; ready once /health answers 200."""

    def __init__(self, args: list[str]):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "zoo", "serve", "--port", str(port), *args], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.first_line = self.proc.stderr.readline().strip()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise SystemExit(f"zoo serve did not become ready: {self.proc.stderr.read()}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(120)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def embed(url: str, text: str):
    return requests.post(url + "/v1/embeddings", json={"model": "minilm_l6", "input": text}, timeout=300)


def transcribe(url: str, timeout: float = 600):
    with open(CLIP, "rb") as f:
        return requests.post(url + "/v1/audio/transcriptions", files={"file": (CLIP.name, f)},
                             data={"model": "tiny.en"}, timeout=timeout)


def latencies(label: str, seconds: list[float], wall: float) -> str:
    return (f"{label}: {len(seconds) / wall:7.1f} req/s, p50 {1000 * percentile(seconds, 50):7.1f} ms, "
            f"p99 {1000 * percentile(seconds, 99):7.1f} ms, wall {wall:6.2f} s")


def embeddings(url: str, n: int) -> None:
    sentences = [f"Sentence number {i} is about {'cats' if i % 2 else 'the weather'} today." for i in range(n)]
    start, one_by_one = time.perf_counter(), []
    for s in sentences:
        response, seconds = timed(lambda s=s: embed(url, s))
        assert response.status_code == 200, response.text
        one_by_one.append(seconds)
    sequential = time.perf_counter() - start

    # /health is polled from its own process, as a load balancer would: the client threads of the burst
    # share this process's interpreter lock and would slow the poller's own clock.
    poller = subprocess.Popen([sys.executable, "-c", HEALTH_POLLER, url], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)  # its interpreter has started and polls
    with ThreadPoolExecutor(n) as pool:
        began, start = time.time(), time.perf_counter()
        results = list(pool.map(lambda s: timed(lambda: embed(url, s)), sentences))
        burst = time.perf_counter() - start
    poller.send_signal(signal.SIGINT)
    polls = [line.split() for line in poller.communicate()[0].splitlines()]
    health = [float(seconds) for sent, seconds in polls if began <= float(sent) <= began + burst]
    statuses = [r.status_code for r, _ in results]
    ok, counts = statuses.count(200), {code: statuses.count(code) for code in sorted(set(statuses))}
    print(latencies(f"{n} embeddings, one at a time", one_by_one, sequential))
    print(latencies(f"{n} embeddings, all at once  ", [s for _, s in results], burst))
    print(f"  {ok}/{n} succeeded {counts}; burst / sequential wall time {burst / sequential:.2f}x (goal <= 0.6)")
    print(f"  /health during the burst: {len(health)} polls, p50 {1000 * percentile(health, 50):.1f} ms, "
          f"p99 {1000 * percentile(health, 99):.1f} ms (goal < 250 ms)")


def transcriptions(url: str, n: int, expected: str) -> float:
    response, lone = timed(lambda: transcribe(url))
    assert response.status_code == 200, response.text
    print(f"a lone transcription of {CLIP.name}: {lone:.2f} s")
    with ThreadPoolExecutor(n) as pool:
        start = time.perf_counter()
        jobs = [pool.submit(lambda: timed(lambda: transcribe(url))) for _ in range(n)]
        time.sleep(min(lone * n / 2, 10))  # in the middle of them
        embedded, embed_seconds = timed(lambda: embed(url, "sent among the transcriptions"))
        results = [job.result() for job in jobs]
        wall = time.perf_counter() - start
    same = sum(r.status_code == 200 and r.json()["text"] == expected for r, _ in results)
    print(latencies(f"{n} concurrent transcriptions", [s for _, s in results], wall))
    print(f"  {same}/{n} succeeded with zoo.transcribe's text; an embedding sent among them answered "
          f"{embedded.status_code} in {embed_seconds:.2f} s (goal < 2 s)")
    return lone


def queue_cap(url: str, n: int) -> None:
    with ThreadPoolExecutor(n) as pool:
        statuses = list(pool.map(lambda _: transcribe(url).status_code, range(n)))
    counts = {code: statuses.count(code) for code in sorted(set(statuses))}
    print(f"{n} concurrent transcriptions against a queue of 32: {counts} (only 200 and 429 expected)")


def give_up(url: str, clients: int, lone: float) -> None:
    def impatient(_):
        try:
            transcribe(url, timeout=0.3)
            return "answered"
        except requests.Timeout:
            return "gave up"

    with ThreadPoolExecutor(clients) as pool:
        outcomes = list(pool.map(impatient, range(clients)))
    response, after = timed(lambda: transcribe(url))
    stats = requests.get(url + "/stats", timeout=30).json()["lanes"]["transcription"]
    print(f"{outcomes.count('gave up')} clients gave up after 0.3 s; the next transcription took {after:.2f} s, "
          f"{after / lone:.2f}x a lone one (goal <= 3x); jobs dropped unrun so far: {stats['dropped']}")


def sigterm(server: Server, n: int) -> None:
    with ThreadPoolExecutor(n) as pool:
        jobs = [pool.submit(transcribe, server.url) for _ in range(n)]
        while True:
            lane = requests.get(server.url + "/stats", timeout=30).json()["lanes"]["transcription"]
            if lane["queued"] >= n - 1:
                break
            time.sleep(0.02)
        code = server.stop()
        statuses = [job.result().status_code for job in jobs]
    print(f"SIGTERM with {n} transcriptions in flight: {statuses.count(200)}/{n} answered 200, "
          f"server exit status {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="server threads (default: zoo's choice)")
    parser.add_argument("--embeddings", type=int, default=200)
    parser.add_argument("--transcriptions", type=int, default=20)
    args = parser.parse_args()
    threads = ["--threads", str(args.threads)] if args.threads else []
    expected = subprocess.run(
        [sys.executable, "-c", f"import zoo; print(zoo.transcribe({str(CLIP)!r})['text'].strip())"],
        capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONWARNINGS="ignore"),
        check=True).stdout.strip()
    server = Server([*threads, "--models", "tiny.en,minilm_l6", "--queue-size", "32"])
    print(f"zoo serve benchmark: cpu ({describe_cpu()}); server says: {server.first_line}; {load_average()}")
    try:
        embeddings(server.url, args.embeddings)
        lone = transcriptions(server.url, args.transcriptions, expected)
        queue_cap(server.url, 60)
        give_up(server.url, 15, lone)
        sigterm(server, 5)
    finally:
        if server.proc.poll() is None:
            server.stop()
    print(load_average())


if __name__ == "__main__":
    main()
