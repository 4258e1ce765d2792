"""Killing a training run at a checkpoint, for the tests that resume it."""

import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def kill_at_checkpoint(command: list, run: Path, target: str = "epoch0001", *, env: dict | None = None,
                       delay: float = 0.0, group: bool = False, timeout: float = 600) -> None:
    """Start `command` (a training run writing to `run`) and SIGKILL it once `run/last` points at checkpoint
    `target`, plus `delay` seconds; group=True kills its whole process group (torchrun and its workers).
    Fails if the run ended before it could be killed."""
    env = env or {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([str(part) for part in command], cwd=ROOT, env=env, start_new_session=group,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill():
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGKILL)

    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            link = run / "last"
            if link.is_symlink() and os.readlink(link).endswith(target):
                time.sleep(delay)
                break
            time.sleep(0.005)
        kill()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            kill()
    assert proc.returncode == -signal.SIGKILL, f"the run ended ({proc.returncode}) before it could be killed"
