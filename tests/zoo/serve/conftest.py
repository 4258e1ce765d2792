"""Real `zoo serve` processes on 127.0.0.1, and the small model folders they serve: a tiny random GPT-2 with
a tokenizer trained here, and a classifier run folder holding a random vit_test, so nothing is downloaded."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import torch
from tokenizers import Tokenizer as Backend
from tokenizers import decoders, models, pre_tokenizers, trainers

import zoo

ROOT = Path(__file__).resolve().parents[3]
AUDIO = ROOT / "examples" / "audio"
START_TIMEOUT = 240  # seconds for loading and warming every model on a busy 2-core machine
CORPUS = ["The quick brown fox jumps over the lazy dog.", "A man is eating food.",
          "Attention is all you need.", "Transformers translate text, caption images and transcribe audio."] * 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout: float = 120, what: str = "the server") -> None:
    """Poll `condition()` until it holds; a bounded wait, so a server that never gets there fails the test."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not get there in {timeout} s")
        time.sleep(0.05)


def lane(server, name: str) -> dict:
    """The /stats of one family's queue: queued, running, done, dropped."""
    return requests.get(server.url + "/stats", timeout=30).json()["lanes"][name]


class Server:
    """A `zoo serve` subprocess: its base URL, its process, and what it wrote to stderr."""

    def __init__(self, args: list[str], log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.health_seen: list[tuple[int, dict]] = []  # the distinct /health answers while it started
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        self.proc = subprocess.Popen([sys.executable, "-m", "zoo", "serve", "--port", str(self.port), *args],
                                     cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"zoo serve exited with {self.proc.returncode}: {self.log.read_text()}")
            try:
                answer = requests.get(self.url + "/health", timeout=2)
                if (answer.status_code, answer.json()) not in self.health_seen:
                    self.health_seen.append((answer.status_code, answer.json()))
                if answer.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"zoo serve not ready after {START_TIMEOUT} s: {self.log.read_text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@contextmanager
def running(args: list[str], log: Path):
    server = Server(args, log)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def generator_dir(tmp_path_factory) -> Path:
    """A gpt2_test saved with save_pretrained() beside a byte-level BPE tokenizer.json trained here."""
    directory = tmp_path_factory.mktemp("serve") / "tiny_gpt2"
    torch.manual_seed(0)
    model = zoo.create_model("gpt2_test").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0) if p.dim() == 2 else None  # sharper logits, so it does not repeat one token
    model.save_pretrained(directory)
    tok = Backend(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(directory / "tokenizer.json"))
    return directory


@pytest.fixture(scope="session")
def classifier_run(tmp_path_factory) -> Path:
    """A run folder as `zoo train` leaves it (best/ with meta.json and weights), holding a random vit_test."""
    from safetensors.torch import save_file

    run = tmp_path_factory.mktemp("serve") / "digits_run"
    folder = run / "checkpoints" / "epoch_1"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    model = zoo.create_model("vit_test", num_classes=3, img_size=32)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    meta = {"model": "vit_test", "model_overrides": {"num_classes": 3, "img_size": 32},
            "classes": ["cat", "dog", "fish"],
            "data": {"img_size": 32, "in_chans": 3, "mean": [0.5] * 3, "std": [0.5] * 3,
                     "interpolation": "bilinear", "crop_pct": 1.0}}
    (folder / "meta.json").write_text(json.dumps(meta))
    (run / "best").symlink_to("checkpoints/epoch_1")
    return run


@pytest.fixture(scope="session")
def server(tmp_path_factory, generator_dir, classifier_run):
    """One server with every family: tiny.en, minilm_l6, the shipped captioner, a generator, a classifier."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with running(["--generator", str(generator_dir), "--classifier", str(classifier_run),
                  "--max-upload-mb", "2", "--max-tokens", "64", "--max-embedding-inputs", "300",
                  "--queue-size", "256"], log) as s:
        yield s
