"""The compute thread's scheduling, on plain Python jobs: turns across lanes, batching, bounded queues,
cancellation and draining."""

import threading
import time

import pytest

from zoo.serve.compute import Lane, QueueFull, Scheduler, Stopped


def blocked_scheduler(lanes):
    """A started scheduler whose thread is held inside a first 'gate' job until the returned event is set,
    so the test can fill the queues before anything else runs."""
    release, started = threading.Event(), threading.Event()

    def gate(payloads):
        started.set()
        release.wait(10)
        return payloads

    scheduler = Scheduler([Lane("gate", gate), *lanes])
    scheduler.start()
    scheduler.submit("gate", None)
    assert started.wait(10)
    return scheduler, release


def test_lanes_take_turns_and_batches_take_what_is_queued():
    order = []

    def record(name):
        def run(payloads):
            order.append((name, list(payloads)))
            return [p * 10 for p in payloads]
        return run

    scheduler, release = blocked_scheduler([Lane("long", record("long"), capacity=8),
                                            Lane("short", record("short"), capacity=8, batch=3)])
    longs = [scheduler.submit("long", i) for i in range(3)]
    shorts = [scheduler.submit("short", i) for i in range(5)]
    release.set()
    assert [f.result(10) for f in longs] == [0, 10, 20]
    assert [f.result(10) for f in shorts] == [0, 10, 20, 30, 40]
    scheduler.stop(10)
    # one long job, then a batch of three short ones, then back to long: no lane waits for a whole queue
    assert order == [("long", [0]), ("short", [0, 1, 2]), ("long", [1]), ("short", [3, 4]), ("long", [2])]


def test_a_full_queue_refuses_with_a_retry_estimate():
    scheduler, release = blocked_scheduler([Lane("work", lambda payloads: payloads, capacity=2)])
    scheduler.lanes["work"].recent.extend([1.5, 2.5])  # 2 s per job lately
    scheduler.submit("work", 1), scheduler.submit("work", 2)
    with pytest.raises(QueueFull) as refused:
        scheduler.submit("work", 3)
    assert refused.value.retry_after == 4 and refused.value.depth == 2
    release.set()
    scheduler.stop(10)


def test_cancelled_jobs_are_dropped_unrun_and_free_their_place():
    ran = []
    scheduler, release = blocked_scheduler([Lane("work", lambda payloads: ran.extend(payloads) or payloads,
                                                 capacity=2)])
    first, second = scheduler.submit("work", "gone"), scheduler.submit("work", "kept")
    assert first.cancel()
    third = scheduler.submit("work", "room again")  # the cancelled job no longer counts against capacity
    release.set()
    assert (second.result(10), third.result(10)) == ("kept", "room again")
    assert first.cancelled() and ran == ["kept", "room again"]
    stats = scheduler.stats()["work"]
    assert (stats["queued"], stats["done"], stats["dropped"]) == (0, 2, 1)
    scheduler.stop(10)


def test_errors_go_to_their_requests_and_stop_drains_the_queue():
    def run(payloads):
        time.sleep(0.01)
        if "bad" in payloads:
            raise ValueError("bad input")
        return payloads

    scheduler, release = blocked_scheduler([Lane("work", run, capacity=16)])
    futures = [scheduler.submit("work", p) for p in ["a", "bad", *"bcdefg"]]
    release.set()
    scheduler.stop(10)  # refuses new work, but finishes all that was queued
    with pytest.raises(Stopped):
        scheduler.submit("work", "late")
    with pytest.raises(ValueError, match="bad input"):
        futures[1].result(0)
    assert [f.result(0) for i, f in enumerate(futures) if i != 1] == list("abcdefg")
