"""The compute thread: every piece of model work runs here, never on the event loop.

Each family has a lane: a bounded queue and a function that runs a list of queued payloads at once. The
thread takes turns across lanes that have work (round-robin), so one short embedding waits for at most one
job of each other family, not for a whole queue of long transcriptions. A lane with `batch > 1` takes what
is queued, up to that many payloads, and runs them together (no timer: a lone request never waits for
company). A full lane refuses new work with QueueFull, whose `retry_after` is the queue's depth times its
recent mean job time. A job cancelled while queued (its client went away) is dropped unrun. The thread count
is set once when the thread starts and changed between jobs only when other work takes or frees cores
(shared.threads.recheck_threads).

    scheduler = Scheduler([Lane("embedding", encode_many, capacity=64, batch=32)], threads=2)
    scheduler.start()
    result = await asyncio.wrap_future(scheduler.submit("embedding", ["a sentence"]))
    scheduler.stop()  # refuses new work, finishes what is queued, joins the thread
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field


class QueueFull(Exception):
    """A lane's queue is full; try again in `retry_after` seconds."""

    def __init__(self, lane: str, depth: int, retry_after: int):
        super().__init__(f"the {lane} queue is full ({depth} waiting); retry in {retry_after} s")
        self.lane, self.depth, self.retry_after = lane, depth, retry_after


class Stopped(Exception):
    """The scheduler is shutting down and takes no new work."""


@dataclass
class Lane:
    """One family's queue. `run(payloads) -> results` (one result per payload, in order) runs on the compute
    thread; `cost(payload)` counts a payload against `batch` (default: 1 each)."""

    name: str
    run: Callable[[list], Sequence]
    capacity: int = 32
    batch: int = 1
    cost: Callable[[object], int] = lambda payload: 1
    queue: deque = field(default_factory=deque)
    recent: deque = field(default_factory=lambda: deque(maxlen=20))  # seconds per job, latest last
    running: int = 0   # jobs on the compute thread now
    done: int = 0      # jobs run
    dropped: int = 0   # jobs cancelled while queued, never run

    def mean_seconds(self) -> float:
        return sum(self.recent) / len(self.recent) if self.recent else 1.0

    def take(self) -> list[tuple[object, Future]]:
        """The next batch: queued jobs whose clients still wait, up to `batch` cost (at least one job)."""
        jobs, cost = [], 0
        while self.queue:
            payload, future = self.queue[0]
            if future.cancelled():
                self.queue.popleft()
                self.dropped += 1
                continue
            if jobs and cost + self.cost(payload) > self.batch:
                break
            self.queue.popleft()
            if future.set_running_or_notify_cancel():
                jobs.append((payload, future))
                cost += self.cost(payload)
            else:
                self.dropped += 1
        return jobs


class Scheduler:
    """One compute thread serving several lanes in turn; see the module docstring."""

    def __init__(self, lanes: Sequence[Lane], threads: int | None = None):
        self.lanes = {lane.name: lane for lane in lanes}
        self.threads = threads
        self._order = list(self.lanes)
        self._next = 0
        self._wake = threading.Condition()
        self._accepting = True
        self._busy = False
        self._thread = threading.Thread(target=self._loop, name="zoo-compute", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, lane_name: str, payload) -> Future:
        """Queue `payload` on a lane; the Future gets its result (or exception). Cancel it to drop the job."""
        lane = self.lanes[lane_name]
        future: Future = Future()
        with self._wake:
            if not self._accepting:
                raise Stopped("the server is shutting down")
            live = sum(1 for _, f in lane.queue if not f.cancelled())
            if live >= lane.capacity:
                raise QueueFull(lane.name, live, self.retry_after(lane, live))
            lane.queue.append((payload, future))
            self._wake.notify()
        return future

    def retry_after(self, lane: Lane, depth: int) -> int:
        """Whole seconds until a queue of `depth` jobs has drained at the lane's recent pace (at least 1)."""
        return max(1, math.ceil(depth * lane.mean_seconds()))

    def depth(self, lane_name: str) -> int:
        with self._wake:
            return sum(1 for _, f in self.lanes[lane_name].queue if not f.cancelled())

    def stats(self) -> dict:
        """Per lane: jobs queued now, running now, run so far, dropped unrun, and the recent mean seconds per job."""
        with self._wake:
            return {lane.name: {"queued": sum(1 for _, f in lane.queue if not f.cancelled()),
                                "running": lane.running, "done": lane.done,
                                "dropped": lane.dropped + sum(1 for _, f in lane.queue if f.cancelled()),
                                "mean_seconds": round(lane.mean_seconds(), 4) if lane.recent else None}
                    for lane in self.lanes.values()}

    def stop(self, timeout: float | None = None) -> None:
        """Take no new work, finish every queued job, then end the thread."""
        with self._wake:
            self._accepting = False
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _pick(self) -> tuple[Lane, list] | None:
        """The next lane with live work after the last one served, and its batch (called under the lock)."""
        for step in range(len(self._order)):
            lane = self.lanes[self._order[(self._next + step) % len(self._order)]]
            jobs = lane.take()
            if jobs:
                self._next = (self._next + step + 1) % len(self._order)
                return lane, jobs
        return None

    def _loop(self) -> None:
        from shared.threads import apply_threads, recheck_threads

        if self.threads:
            apply_threads(self.threads)  # per thread under OpenMP: set where the work runs

        while True:
            with self._wake:
                picked = self._pick()
                while picked is None:
                    if not self._accepting:
                        return
                    self._wake.wait()
                    picked = self._pick()
            self._run(*picked)
            recheck_threads()  # other work may have come or gone (an explicit --threads never changes)

    def _run(self, lane: Lane, jobs: list[tuple[object, Future]]) -> None:
        with self._wake:
            lane.running = len(jobs)
        start = time.perf_counter()
        try:
            results = lane.run([payload for payload, _ in jobs])
        except BaseException as err:  # the error belongs to the requests, never to the thread
            for _, future in jobs:
                future.set_exception(err)
        else:
            for (_, future), result in zip(jobs, results):
                future.set_result(result)
        with self._wake:
            lane.recent.append((time.perf_counter() - start) / len(jobs))
            lane.done += len(jobs)
            lane.running = 0
