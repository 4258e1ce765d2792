"""`torchrun --nproc_per_node=2 -m zoo train`: DDP over gloo with 2 CPU processes; only rank 0 writes."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.zoo.crash import kill_at_checkpoint

ROOT = Path(__file__).resolve().parents[2]


TINY = ("--model", "vit_test", "--train-subset", "64", "--val-subset", "41", "-b", "8", "--no-progress",
        "--device", "cpu")


def _torchrun_path() -> str:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun is not None, "torchrun (installed with torch) is missing next to this Python"
    return torchrun


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _torchrun(*args: str, program: tuple[str, ...] = ("-m", "zoo", "train")) -> str:
    """`torchrun --nproc_per_node=2 -m zoo train ARGS` (or another program); returns the log of both
    processes."""
    out = subprocess.run([_torchrun_path(), "--standalone", "--nproc_per_node=2", *program, *args],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    return log


@pytest.mark.slow
def test_two_process_ddp_run(tmp_path, capsys):
    run = tmp_path / "run"
    log = _torchrun(*TINY, "--epochs", "2", "--output", str(run))
    assert "2 process(es)" in log and log.count("run folder:") == 1  # rank 1 neither logs nor writes
    with open(run / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # Evaluation is sharded 21 + 20 over the two ranks and summed: every one of the 41 images counts once,
    # so top-1 is a multiple of 1/41.
    for row in rows:
        hits = float(row["eval_top1"]) * 41 / 100
        assert abs(hits - round(hits)) < 1e-6
    assert (run / "last" / "model.safetensors").is_file() and (run / "confusion_matrix.png").is_file()
    # 64 images, 2 ranks, 8 per batch: 4 updates an epoch on each rank.
    assert (run / "last").resolve().name == "epoch0002"
    meta = (run / "last" / "meta.json").read_text()
    assert '"updates": 8' in meta
    # The sharded evaluation agrees with a single-process one of the same checkpoint.
    from zoo.cli import main

    assert main(["validate", "--checkpoint", str(run / "last")]) == 0
    assert f"41 images  top-1 {float(rows[-1]['eval_top1']):.2f}%" in capsys.readouterr().out


@pytest.mark.slow
def test_a_killed_ddp_run_resumes_bit_identical(tmp_path):
    """Both processes are SIGKILLed once epoch 1 is saved; on resume each takes back its own random state
    (drop_path draws differ per rank), so the run ends with exactly the weights of an unbroken one."""
    from safetensors.torch import load_file

    args = (*TINY, "--deterministic", "--epochs", "3")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _torchrun(*args, "--output", str(whole))
    kill_at_checkpoint([_torchrun_path(), "--standalone", "--nproc_per_node=2", "-m", "zoo", "train", *args,
                        "--output", killed], killed, env=_env(), group=True)  # torchrun and both workers
    assert "resumed from" in _torchrun("--resume", str(killed), "--no-progress")
    a = load_file(str(whole / "last" / "model.safetensors"))
    b = load_file(str(killed / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after a DDP resume"


TRAIN_THEN_COUNT_THREADS = """
import os
import sys

from zoo.cli import main

main(["train", *sys.argv[1:]])
names = [open(f"/proc/self/task/{task}/comm").read().strip() for task in os.listdir("/proc/self/task")]
print(f"rank {os.environ['RANK']}: {sum(name.startswith('pt_gloo') for name in names)} gloo threads left")
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through Linux's /proc")
def test_the_process_group_and_its_threads_end_with_the_run(tmp_path):
    """`zoo train` returns with its process group destroyed and the group's threads joined. A group left to
    interpreter finalization aborts the process at random (SIGABRT, "terminate called without an active
    exception"): a gloo thread still letting go of a finished collective needs the GIL and is ended there."""
    script = tmp_path / "train_then_count_threads.py"
    script.write_text(TRAIN_THEN_COUNT_THREADS)
    log = _torchrun(*TINY, "--epochs", "1", "--output", str(tmp_path / "run"), program=(str(script),))
    assert "rank 0: 0 gloo threads left" in log and "rank 1: 0 gloo threads left" in log, log[-4000:]
