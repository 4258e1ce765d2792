"""`torchrun --nproc_per_node=2 -m zoo train`: DDP over gloo with 2 CPU processes; only rank 0 writes."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_process_ddp_run(tmp_path, capsys):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed next to this Python")
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "zoo", "train", "--model", "vit_test",
         "--epochs", "2", "--train-subset", "64", "--val-subset", "41", "-b", "8", "--no-progress",
         "--device", "cpu", "--output", str(run)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
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
