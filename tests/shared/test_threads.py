"""The thread count a process chooses: explicit settings in order, then its allowed cores less the busy ones.

Nothing here depends on how busy the machine is: the busy cores are injected, or one allowed core leaves
nothing to choose.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from shared import threads
from shared.errors import ConfigError
from shared.threads import choose_threads, recheck_threads, use_threads

ROOT = Path(__file__).resolve().parents[2]
THREAD_VARIABLES = ("ZOO_NUM_THREADS", "OMP_NUM_THREADS", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID")


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    """No thread settings from the environment, a machine of 4 allowed cores, and torch's count restored."""
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "allowed_cores", lambda: 4)
    monkeypatch.setattr(threads, "_job", None)
    before = torch.get_num_threads()
    yield
    threads.apply_threads(before)


def no_probe():
    raise AssertionError("an explicit setting must not measure the machine")


def test_explicit_settings_win_in_order(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads(other_busy=no_probe) == threads.ThreadChoice(3, "OMP_NUM_THREADS=3", explicit=True)
    monkeypatch.setenv("ZOO_NUM_THREADS", "2")
    assert choose_threads(other_busy=no_probe).reason == "ZOO_NUM_THREADS=2"
    choice = choose_threads(5, other_busy=no_probe)
    assert (choice.count, choice.reason, choice.explicit) == (5, "--threads", True)
    assert choose_threads(0, other_busy=no_probe).count == 2  # 0, like None, leaves it to the environment


def test_openmp_lists_and_bad_values(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2,1")  # one count per nesting level
    assert choose_threads(other_busy=no_probe).count == 2
    monkeypatch.setenv("ZOO_NUM_THREADS", "many")
    with pytest.raises(ConfigError, match="ZOO_NUM_THREADS='many'"):
        choose_threads()
    with pytest.raises(ConfigError, match="--threads -1"):
        choose_threads(-1)


@pytest.mark.parametrize("busy, count, reason", [
    (0.0, 4, "4 of 4 allowed cores free"),
    (0.4, 4, "4 of 4 allowed cores free"),  # a core counts as busy from half its time
    (0.6, 3, "1 of 4 allowed cores busy with other work"),
    (1.0, 3, "1 of 4 allowed cores busy with other work"),
    (2.5, 1, "3 of 4 allowed cores busy with other work"),
    (9.0, 1, "4 of 4 allowed cores busy with other work"),
])
def test_busy_cores_are_left_alone_but_never_below_one(busy, count, reason):
    choice = choose_threads(other_busy=lambda: busy)
    assert (choice.count, choice.reason, choice.explicit) == (count, reason, False)


def test_the_processes_of_one_job_share_the_free_cores(monkeypatch):
    assert choose_threads(share=2, other_busy=lambda: 0.0).count == 2
    assert choose_threads(share=3, other_busy=lambda: 1.0).count == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun's two ranks on this machine
    choice = choose_threads(other_busy=lambda: 0.0)
    assert choice.count == 2 and choice.reason.endswith("shared by 2 processes")


def test_str_says_count_and_reason():
    assert str(threads.ThreadChoice(1, "OMP_NUM_THREADS=1")) == "1 thread (OMP_NUM_THREADS=1)"
    assert str(threads.ThreadChoice(2, "2 of 2 allowed cores free")) == "2 threads (2 of 2 allowed cores free)"


class FakeUsage:
    """Stands in for CoreUsage: every re-check sees the next busy value, as if a second had passed."""

    busy = []

    def __init__(self, siblings=False):
        pass

    def elapsed(self):
        return 5.0

    def other_busy(self):
        return FakeUsage.busy.pop(0)


def test_a_long_job_follows_other_work_as_it_comes_and_goes(monkeypatch):
    monkeypatch.setattr(threads, "measure_other_busy", lambda: 0.0)
    monkeypatch.setattr(threads, "CoreUsage", FakeUsage)
    FakeUsage.busy = [1.0, 1.0, 0.0]
    said = []
    assert use_threads(log=said.append).count == 4 and torch.get_num_threads() == 4
    assert recheck_threads().count == 3 and torch.get_num_threads() == 3  # another job arrived
    assert recheck_threads() is None  # it is still there: nothing changes, nothing is said
    assert recheck_threads().count == 4 and torch.get_num_threads() == 4  # it left
    assert said == ["now 3 threads (1 of 4 allowed cores busy with other work)",
                    "now 4 threads (4 of 4 allowed cores free)"]


def test_recheck_leaves_an_explicit_count_and_waits_for_enough_time(monkeypatch):
    assert recheck_threads() is None  # nothing chose a count yet
    monkeypatch.setenv("ZOO_NUM_THREADS", "1")
    use_threads()
    assert recheck_threads(min_seconds=0) is None and torch.get_num_threads() == 1
    monkeypatch.delenv("ZOO_NUM_THREADS")
    monkeypatch.setattr(threads, "measure_other_busy", lambda: 0.0)
    use_threads()
    assert recheck_threads(min_seconds=3600) is None  # an hour has not passed


def _python(code: str, **env: str) -> str:
    """Run `code` in a fresh Python with no thread settings but `env`; returns what it printed."""
    env = {**{k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}, **env, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="affinity masks are a Linux feature")
def test_the_affinity_mask_is_followed():
    code = """
        import os
        from shared.threads import allowed_cores, choose_threads
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        print(allowed_cores(), choose_threads(other_busy=lambda: 0.0))
    """
    assert _python(code) == "1 1 thread (1 of 1 allowed cores free)"


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads a launcher's /proc environ")
def test_torchruns_own_openmp_default_is_not_the_users():
    """torchrun gives its workers OMP_NUM_THREADS=1 when the user set none; the user's own setting wins."""
    launcher = """
        import os, subprocess, sys
        os.environ.update(OMP_NUM_THREADS="1", TORCHELASTIC_RUN_ID="x", LOCAL_WORLD_SIZE="1")  # as torchrun does
        child = "from shared.threads import choose_threads; print(choose_threads(other_busy=lambda: 0.0).explicit)"
        sys.exit(subprocess.call([sys.executable, "-c", child]))
    """
    assert _python(launcher) == "False"
    assert _python(launcher, OMP_NUM_THREADS="1") == "True"


def test_the_jobs_own_cpu_time_is_not_other_work(monkeypatch):
    usage = threads.CoreUsage()
    usage.last = (0.0, 10.0, 5.0)  # (seconds, busy core-seconds on the allowed cores, the job's CPU seconds)
    monkeypatch.setattr(usage, "_read", lambda: (2.0, 13.6, 7.0))
    assert usage.other_busy() == pytest.approx(0.8)  # 1.8 cores busy, 1.0 of them this job's
    monkeypatch.setattr(usage, "_read", lambda: (4.0, None, 9.0))  # no /proc/stat: the load average
    monkeypatch.setattr(os, "getloadavg", lambda: (2.5, 2.0, 1.0))
    assert usage.other_busy() == pytest.approx(1.5)


def test_the_count_is_applied_only_when_it_changes(monkeypatch):
    """torch.set_num_threads slows torch's CPU flash attention even when it changes nothing: never call it
    for the count torch already has."""
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    threads.apply_threads(2)
    assert calls == []
    threads.use_threads(2)
    assert calls == []
    threads.apply_threads(1)
    assert calls == [1]
