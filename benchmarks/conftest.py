"""Helpers for benchmarks that report a speed as a ratio against a baseline in the same run."""

import time
import warnings

import pytest


def best_time(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def paired_ratio(candidate, baseline, rounds: int = 7) -> float:
    """min time of `candidate` / min time of `baseline`, the two interleaved round by round so
    that load from elsewhere on the machine hits both alike."""
    cand, base = float("inf"), float("inf")
    for _ in range(rounds):
        base = min(base, best_time(baseline, 1))
        cand = min(cand, best_time(candidate, 1))
    return cand / base


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
