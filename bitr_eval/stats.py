"""Aggregate statistics: mean, interquartile mean, stratified percentile-bootstrap CIs.

- One result (`summarize`): a (tasks, seeds) array; seeds are resampled within each task (the
  strata). This interval covers the evaluation seeds only.
- A board entry of several training runs (`summarize_runs`): a (runs, tasks) array, per task the
  mean over evaluation seeds; runs are resampled within each task, as rliable does.

The resampling is array operations on one matrix of indices (`Bootstrap`), drawn once per seed
in a process and shared by every statistic: the mean and the IQM of every unit, protocol and
drop of every result and board entry, as rliable does. It draws what `scipy.stats.bootstrap`
(percentile method, one sample per task) draws with the same seed, so the intervals of result
files written with it are reproduced to 1e-13 (tests/test_board_runs.py compares the two).

10,000 resamples: with 2,000 the interval ends move by about a point between two draws.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 10000  # with 2,000 the interval ends move by about a point from one draw to the next
TRIM = 0.25  # the IQM drops the lowest and the highest quarter
LAYOUTS = 8  # index layouts kept (one per shape of scores): a board has a few shapes, an evaluation's aggregate grows


def iqm(values: np.ndarray, axis=None) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (robust to a few outlier runs)."""
    return stats.trim_mean(values, TRIM, axis=axis)


def _iqm_of_rows(rows: np.ndarray) -> np.ndarray:
    """`iqm` of each row, sorting `rows` in place: the same trimmed mean, taken from sorted rows
    (np.partition, which trim_mean uses, is ten times slower on many short rows); equal to
    trim_mean's up to the order of the last additions."""
    n = rows.shape[-1]
    cut = int(TRIM * n)
    rows.sort(axis=-1)
    return rows[:, cut:n - cut].mean(axis=-1)


class Bootstrap:
    """The stratified bootstrap of one seed: per stratum (task), RESAMPLES draws with replacement
    of its observations. The index matrix is drawn once per number of observations and grown
    when more strata are asked for: the draw for k strata is the first k strata of a larger one
    (one generator stream), so one matrix serves every entry, unit and protocol. Its layout by
    resample (each row all strata side by side) is kept for the last LAYOUTS shapes."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._drawn: dict[int, np.ndarray] = {}  # observations per stratum -> (strata, RESAMPLES, n) draws
        self._rows: dict[tuple[int, int], np.ndarray] = {}  # (strata, n) -> the draw laid out by resample

    def _indices(self, strata: int, n: int) -> np.ndarray:
        """(RESAMPLES, strata * n): row r holds resample r of every stratum, side by side in
        order, as indices into the flattened (strata, n) scores."""
        rows = self._rows.pop((strata, n), None)
        if rows is None:
            drawn = self._drawn.get(n)
            if drawn is None or drawn.shape[0] < strata:
                drawn = self._drawn[n] = np.random.default_rng(self.seed).integers(0, n, (strata, RESAMPLES, n))
            offsets = (np.arange(strata) * n)[:, None, None]
            rows = (drawn[:strata] + offsets).transpose(1, 0, 2).reshape(RESAMPLES, strata * n)
        self._rows[strata, n] = rows  # the most recently used last
        while len(self._rows) > LAYOUTS:
            del self._rows[next(iter(self._rows))]
        return rows

    def resampled(self, scores: np.ndarray) -> np.ndarray:
        """(RESAMPLES, strata * n): each row one resample of the (strata, n) `scores`."""
        return scores.ravel()[self._indices(*scores.shape)]

    def summarize(self, scores) -> dict:
        """Mean and IQM of a (tasks, seeds) array, with 95% stratified-bootstrap intervals."""
        scores = np.asarray(scores, dtype=np.float64)
        summary = {"mean": float(scores.mean()), "mean_ci95": None,
                   "iqm": float(iqm(scores.ravel())), "iqm_ci95": None, "n": int(scores.size)}
        if scores.shape[1] < 2:
            scores = scores.T  # one seed per task: resample the tasks instead
        if scores.shape[1] < 2 or np.ptp(scores) == 0:  # nothing to resample
            summary["mean_ci95"] = [summary["mean"]] * 2
            summary["iqm_ci95"] = [summary["iqm"]] * 2
            return summary
        rows = self.resampled(scores)
        means = rows.mean(axis=-1)  # before the IQM sorts the rows
        alpha = (1 - CONFIDENCE) / 2
        for key, values in (("mean", means), ("iqm", _iqm_of_rows(rows))):
            low, high = np.quantile(values, [alpha, 1 - alpha])
            summary[f"{key}_ci95"] = [float(low), float(high)]
        return summary


@functools.cache
def _bootstrap(seed: int) -> Bootstrap:
    """The one Bootstrap of `seed` in this process: its matrix is drawn once."""
    return Bootstrap(seed)


def summarize(scores, seed: int = 0) -> dict:
    """Mean and IQM of a (tasks, seeds) array, with 95% stratified-bootstrap intervals."""
    return _bootstrap(seed).summarize(scores)


def summarize_runs(scores, seed: int = 0) -> dict:
    """Mean and IQM of a (runs, tasks) array (per task: the mean over evaluation seeds), with 95%
    intervals from a bootstrap stratified over tasks that resamples the runs within each task
    (as rliable does): the interval covers the spread between training runs."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] < 2:
        raise ValueError(f"summarize_runs takes a (runs, tasks) array of at least 2 runs, got shape {scores.shape}")
    return _bootstrap(seed).summarize(scores.T)  # one stratum per task, its runs resampled
