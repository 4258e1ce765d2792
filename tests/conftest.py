"""The test session takes its thread count as zoo's commands do, and revises it between tests: on a machine
where other work holds a core, in-process tests then run at the free cores' speed instead of several times
slower with OpenMP threads waiting for a core they do not get. OMP_NUM_THREADS or ZOO_NUM_THREADS fix it."""

from shared.threads import recheck_threads, use_threads


def pytest_configure(config):
    use_threads()


def pytest_runtest_setup(item):
    recheck_threads()
