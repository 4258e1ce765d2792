"""Crash safety of `zoo train`: SIGKILL at a checkpoint or mid-epoch, --resume, and bit-identical weights."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.zoo.crash import kill_at_checkpoint
from zoo.train import checkpoint

ROOT = Path(__file__).resolve().parents[2]
# Every random part of the recipe is on: RandAugment, drop-path, Mixup/CutMix, label smoothing, EMA.
TINY = ["--model", "vit_test", "--epochs", "3", "--train-subset", "96", "--val-subset", "32", "-b", "16",
        "--mixup", "0.4", "--cutmix", "1.0", "--drop-path", "0.2", "--deterministic", "--no-progress"]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _train(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "zoo", "train", *args], cwd=ROOT, env=_env(),
                            capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def _kill_when(run: Path, target: str, extra: list[str], delay: float = 0.0) -> None:
    """Start training and SIGKILL it once `last` points at checkpoint `target` (plus `delay` seconds)."""
    kill_at_checkpoint([sys.executable, "-m", "zoo", "train", *TINY, *extra, "--output", run], run, target,
                       env=_env(), delay=delay)


def _weights(run: Path) -> dict:
    last = run / "last"
    return {name: load_file(str(last / name)) for name in ("model.safetensors", "model_ema.safetensors")}


def _rows(run: Path) -> list[dict]:
    with open(run / "summary.csv") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def _assert_same(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    for name in wa:
        assert wa[name].keys() == wb[name].keys()
        for key in wa[name]:
            assert torch.equal(wa[name][key], wb[name][key]), f"{name}:{key} differs after resume"
    assert _rows(a) == _rows(b)


@pytest.mark.slow
def test_sigkill_and_resume_end_bit_identical(tmp_path):
    reference = tmp_path / "reference"
    _train(*TINY, "--save-interval", "2", "--output", str(reference))
    assert len(_rows(reference)) == 3

    # Killed just after the first mid-epoch checkpoint of epoch 2 (6 batches an epoch, one every 2 updates).
    mid = tmp_path / "mid"
    _kill_when(mid, "epoch0001-update0000008", ["--save-interval", "2"])
    assert len(_rows(mid)) < 3
    out = _train("--resume", str(mid))
    assert "resumed from" in out.stderr + out.stdout
    _assert_same(reference, mid)

    # Epoch-end checkpoints only, killed in the middle of epoch 2: that epoch is redone from its start.
    boundary = tmp_path / "boundary"
    plain = tmp_path / "plain"
    _train(*TINY, "--output", str(plain))
    _kill_when(boundary, "epoch0001", [], delay=0.3)
    _train("--resume", str(boundary))
    _assert_same(plain, boundary)
    # Checkpoint placement changes nothing either: same weights with or without mid-epoch saves.
    _assert_same(reference, plain)
    leftovers = [p.name for p in (boundary / "checkpoints").iterdir()]
    assert set(leftovers) <= {os.readlink(boundary / "last").split("/")[-1],
                              os.readlink(boundary / "best").split("/")[-1]}


def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 2)
    meta = {"model": "m", "classes": ["a", "b"]}
    checkpoint.save(tmp_path, "epoch0001", model, None, meta, {"progress": {"epoch": 1}}, best=True)
    real_save = torch.save

    def crash(obj, path, *a, **k):
        real_save(obj, path, *a, **k)
        raise KeyboardInterrupt("simulated kill while writing state.pt")

    monkeypatch.setattr(torch, "save", crash)
    with torch.no_grad():
        model.weight.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(tmp_path, "epoch0002", model, None, meta, {"progress": {"epoch": 2}}, best=False)
    monkeypatch.setattr(torch, "save", real_save)
    # `last` still names the complete checkpoint, no temporary file became a real one.
    assert os.readlink(tmp_path / "last").endswith("epoch0001")
    assert checkpoint.load_state(checkpoint.find(tmp_path, ("last",)))["progress"]["epoch"] == 1
    assert not (tmp_path / "checkpoints" / "epoch0002" / "state.pt").exists()
    checkpoint.clean(tmp_path)  # what the next save or a resume does
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch0001"]


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "summary.csv"
    checkpoint.atomic_write_text(target, "old\n")

    def fail(tmp):
        Path(tmp).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        checkpoint.atomic_write(target, fail)
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["summary.csv"]


def test_rng_state_round_trips_through_a_weights_only_load(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(3)
    state = checkpoint.rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    checkpoint.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
