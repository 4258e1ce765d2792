"""How many threads a process's tensor operations use: the cores it may run on that no other work keeps busy.

torch takes every core by default. Where another process keeps one of them busy, OpenMP's threads wait,
spinning, for a partner that is not running, and a step takes several times longer than with one thread
fewer. So an entry point asks once, at its start, how many of its cores are free (`use_threads`), and a long
job asks again between its steps (`recheck_threads`), so that it neither collapses when other work arrives
nor stays small when it leaves. An explicit setting always wins and is never revised.

    choice = use_threads(args.threads, log=print)  # 1 thread (1 of 2 allowed cores busy with other work)
    for epoch in ...:
        train_epoch()
        recheck_threads()  # when the count changes: "now 2 threads (2 of 2 allowed cores free)" to log
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from shared.errors import ConfigError

ENV_VARS = ("ZOO_NUM_THREADS", "OMP_NUM_THREADS")  # in the order they win, after an explicit --threads
PROBE_SECONDS = 0.1      # how long the first look at the machine watches it
RECHECK_SECONDS = 1.0    # the shortest stretch a re-check judges: shorter ones are mostly sampling noise


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and why: the user's setting (`explicit`, kept for the whole job) or the free cores."""

    count: int
    reason: str
    explicit: bool = False

    def __str__(self) -> str:
        return f"{self.count} thread{'' if self.count == 1 else 's'} ({self.reason})"


def allowed_cpus() -> list[int]:
    """The ids of the CPUs this process may run on (its affinity mask; every CPU where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def allowed_cores() -> int:
    """How many cores this process may use: its affinity mask, capped by a cgroup CPU quota (a container's
    `--cpus`)."""
    cores = len(allowed_cpus())
    try:  # cgroup v2: "<quota> <period>" in microseconds, or "max <period>"
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(cores, 1)


def _proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _sibling_pids() -> list[int]:
    """The other children of this process's parent: under torchrun, the other ranks on this machine."""
    parent, me, pids = os.getppid(), os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == parent:
                pids.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


class CoreUsage:
    """How many cores work outside this job kept busy between two readings.

    Busy time on the allowed CPUs comes from /proc/stat; the job's own CPU time (this process, the children
    it waited for, and with `siblings` the other ranks its launcher started) is subtracted, so a job never
    counts its own threads as other work. Low-priority (niced) work is not counted when this process runs at
    normal priority: it gives way. Where /proc/stat is missing, the load average stands in for the busy cores.
    """

    def __init__(self, siblings: bool = False):
        self.cpus, self.siblings = allowed_cpus(), siblings
        self.last = self._read()

    def _busy_seconds(self) -> float | None:
        try:
            lines = Path("/proc/stat").read_text().splitlines()
        except OSError:
            return None
        count_nice = os.nice(0) > 0 if hasattr(os, "nice") else True
        wanted, busy = {f"cpu{i}" for i in self.cpus}, 0
        for line in lines:
            name, *ticks = line.split()
            if name in wanted:
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, ticks[:8])
                busy += user + system + irq + softirq + steal + (nice if count_nice else 0)
        return busy / os.sysconf("SC_CLK_TCK")

    def _job_seconds(self) -> float:
        children = os.times()
        own = time.process_time() + children.children_user + children.children_system
        if self.siblings:
            own += sum(_proc_cpu_seconds(pid) for pid in _sibling_pids())
        return own

    def _read(self) -> tuple[float, float | None, float]:
        return time.monotonic(), self._busy_seconds(), self._job_seconds()

    def elapsed(self) -> float:
        return time.monotonic() - self.last[0]

    def other_busy(self) -> float:
        """Cores busy with other work since the last reading (or construction); starts the next stretch."""
        (t0, busy0, job0), (t1, busy1, job1) = self.last, self._read()
        self.last = (t1, busy1, job1)
        seconds = max(t1 - t0, 1e-6)
        job = (job1 - job0) / seconds
        if busy0 is None or busy1 is None:
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
            return max(load - job, 0.0)
        return max((busy1 - busy0) / seconds - job, 0.0)


def measure_other_busy(seconds: float = PROBE_SECONDS) -> float:
    """Cores busy with other work, watched for `seconds`."""
    usage = CoreUsage(siblings=_local_ranks() > 1)
    time.sleep(seconds)
    return usage.other_busy()


def _local_ranks() -> int:
    """Processes of this job on this machine (torchrun's LOCAL_WORLD_SIZE; 1 outside torchrun)."""
    return max(int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1), 1)


def _set_by_torchrun(name: str) -> bool:
    """Whether `name` is torchrun's own OMP_NUM_THREADS=1, which it gives its workers when the user set none:
    then this job divides the free cores itself. (A process's /proc environ is the one it started with, so
    the launcher's shows whether the user set the variable.)"""
    if name != "OMP_NUM_THREADS" or "TORCHELASTIC_RUN_ID" not in os.environ:
        return False
    try:
        launcher = Path(f"/proc/{os.getppid()}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return not any(entry.startswith(b"OMP_NUM_THREADS=") for entry in launcher)


def _explicit(requested: int | None) -> ThreadChoice | None:
    if requested is not None and requested < 0:
        raise ConfigError(f"--threads {requested}: expected a positive number of threads, or 0 to choose")
    if requested:
        return ThreadChoice(requested, "--threads", explicit=True)
    for name in ENV_VARS:
        value = os.environ.get(name, "").strip()
        if not value or _set_by_torchrun(name):
            continue
        try:
            count = int(value.split(",")[0])  # OpenMP allows a list per nesting level; the first is ours
        except ValueError:
            count = 0
        if count < 1:
            raise ConfigError(f"{name}={value!r}: expected a positive number of threads")
        return ThreadChoice(count, f"{name}={value}", explicit=True)
    return None


def choose_threads(requested: int | None = None, *, share: int | None = None,
                   other_busy: Callable[[], float] | None = None) -> ThreadChoice:
    """The thread count for this process, and why.

    requested: an explicit count (`--threads`; None or 0 decides), which wins over ZOO_NUM_THREADS, which wins
    over OMP_NUM_THREADS. Otherwise: the allowed cores less those busy with other work (`other_busy()`, in
    cores; one counts as busy from half its time), divided among the `share` processes of one job on this
    machine (default: torchrun's local ranks), and at least 1. `other_busy` defaults to measure_other_busy.
    """
    explicit = _explicit(requested)
    if explicit is not None:
        return explicit
    share = share or _local_ranks()
    allowed = allowed_cores()
    busy = min(int((other_busy or measure_other_busy)() + 0.5), allowed)
    free = max(allowed - busy, 1)
    count = max(free // share, 1)
    reason = (f"{busy} of {allowed} allowed cores busy with other work" if busy
              else f"{allowed} of {allowed} allowed cores free")
    if share > 1:
        reason += f", shared by {share} processes"
    return ThreadChoice(count, reason)


def apply_threads(count: int) -> None:
    """Give torch `count` intra-op threads in the calling thread, calling torch.set_num_threads only when
    the count differs from torch's current one.

    The call is not free even when it changes nothing: once a process has made it, torch 2.11's CPU
    flash-attention kernel runs 2-3x slower at 2 threads (measured: 108 against 280 us for one (32, 4, 17, 16)
    attention, and a digits training epoch ~5% slower), so a process whose count is already right must not
    make it.
    """
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


class _Job:
    """The running job's choice and the stretch of time the next re-check will judge."""

    def __init__(self, choice: ThreadChoice, share: int, log: Callable[[str], None] | None):
        self.choice, self.share, self.log = choice, share, log
        self.usage = None if choice.explicit else CoreUsage(siblings=share > 1)


_job: _Job | None = None


def use_threads(requested: int | None = None, *, share: int | None = None,
                log: Callable[[str], None] | None = None) -> ThreadChoice:
    """Choose this process's thread count (choose_threads), apply it to torch, and remember it so that
    recheck_threads() can revise it; `log` is told of every later change."""
    global _job
    share = share or _local_ranks()
    choice = choose_threads(requested, share=share)
    apply_threads(choice.count)
    _job = _Job(choice, share, log)
    return choice


def recheck_threads(min_seconds: float = RECHECK_SECONDS) -> ThreadChoice | None:
    """Between the steps of a long job: judge the time since the last check and change the count if the free
    cores changed. Returns the new choice, or None when nothing changed (an explicit count never does, nor
    does anything before use_threads() was called or before `min_seconds` have passed)."""
    job = _job
    if job is None or job.usage is None or job.usage.elapsed() < min_seconds:
        return None
    busy = job.usage.other_busy()
    choice = choose_threads(share=job.share, other_busy=lambda: busy)
    if choice.count == job.choice.count:
        return None
    apply_threads(choice.count)
    job.choice = choice
    if job.log is not None:
        job.log(f"now {choice}")
    return choice
