"""Aggregate statistics over tasks x seeds: mean, interquartile mean, stratified bootstrap CIs.

Scores come as a (tasks, seeds) array. The bootstrap resamples seeds within each task (the
strata), as rliable recommends for few runs per task, through `scipy.stats.bootstrap`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000


def iqm(values: np.ndarray, axis=None) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (robust to a few outlier runs)."""
    return stats.trim_mean(values, 0.25, axis=axis)


def _stratified_ci(scores: np.ndarray, statistic, seed: int) -> list[float]:
    if scores.shape[1] < 2:
        scores = scores.T  # one seed per task: resample the tasks instead
    if scores.shape[1] < 2 or np.ptp(scores) == 0:
        value = float(statistic(scores.ravel(), axis=None))
        return [value, value]  # nothing to resample
    result = stats.bootstrap(
        tuple(scores),  # one sample per task, each resampled on its own: stratified
        lambda *tasks, axis: statistic(np.concatenate(tasks, axis=axis), axis=axis),
        vectorized=True,
        n_resamples=RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def summarize(scores, seed: int = 0) -> dict:
    """Mean and IQM of a (tasks, seeds) array, with 95% stratified-bootstrap intervals."""
    scores = np.asarray(scores, dtype=np.float64)
    return {
        "mean": float(scores.mean()),
        "mean_ci95": _stratified_ci(scores, np.mean, seed),
        "iqm": float(iqm(scores.ravel())),
        "iqm_ci95": _stratified_ci(scores, iqm, seed),
        "n": int(scores.size),
    }
