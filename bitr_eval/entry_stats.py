"""The statistics of a board entry: what the pages show of it, from the board records of its
checked runs (`bitr_eval.check_cache.board_record`).

With several training runs the intervals are recomputed over the runs (a bootstrap stratified
over tasks that resamples the runs, `bitr_eval.stats.summarize_runs`); a single run keeps the
intervals of its own (checked) result, which cover evaluation seeds only.
"""

from __future__ import annotations

import numpy as np

from bitr_envs.datasets.ids import DatasetId, env_slug
from bitr_eval.agents import role
from bitr_eval.results import sealing_key
from bitr_eval.stats import summarize_runs
from bitr_eval.suites import SUITES


def _task_matrix(runs: list[dict], units: list) -> np.ndarray | None:
    """(runs, tasks): per run, the mean over evaluation seeds of every task of `units`, one
    column per (unit, task); None when a unit failed in some run."""
    rows = []
    for run in runs:
        records = {u["unit_id"]: u for u in run["units"]}
        if any(records[u.unit_id]["status"] != "ok" for u in units):
            return None
        rows.append(np.concatenate([np.mean(np.array(records[u.unit_id]["scores"]), axis=1) for u in units]))
    return np.array(rows)


def _training_seconds(run: dict, families: set) -> float | None:
    """A run's training wall time, unless its record names a dataset of a family outside the
    suite's: results made before the evaluator kept to the suite's families summed every family
    a checkpoint folder held."""
    training = run["submission"].get("training") or {}
    wall, datasets = training.get("wall_seconds"), training.get("dataset") or []
    if not isinstance(wall, (int, float)):
        return None
    for dataset in [datasets] if isinstance(datasets, str) else datasets:
        try:
            if DatasetId.parse(dataset).env not in families:
                return None
        except ValueError:  # not one of ours: nothing to check it against
            pass
    return float(wall)


def shifted_protocol(suite) -> str:
    """The context shift an entry's drop is measured against: a policy pursuing another task on
    the current suites, the held-out behaviours on the earlier ones."""
    return "offline-other-task" if "offline-other-task" in suite.protocols else "offline-ood"


def entry_view(name: str, runs: list[dict]) -> dict:
    """What the pages show of an entry: per protocol the mean and IQM with 95% intervals (over
    training runs when there are several, else over evaluation seeds), the iid->ood drop, the
    training wall time, and per unit the same."""
    suite = SUITES[runs[0]["suite"]["name"]]
    many = len(runs) > 1
    view = {"name": name, "agent": runs[0]["submission"]["agent"], "role": role([r["submission"] for r in runs]),
            "runs": len(runs), "suite": suite.name, "started": max(r["started"] for r in runs),
            "units": [],
            # the weakest sandbox any unit ran in: only "bwrap" keeps the datasets and files out of reach
            "isolation": "bwrap" if all(u.get("isolation") == "bwrap" for r in runs for u in r["units"]) else "process",
            # scored on a maintainer's secret tasks (bitr_eval.sealed): the key's sha256, one for all
            # the runs of an entry; None for the public tasks
            "sealed": sealing_key(runs[0])}
    # per protocol over the test tasks ("protocols") and over the ood tasks ("ood_tasks")
    for split, key in (("test", "protocols"), ("ood", "ood_tasks")):
        view[key] = {}
        for protocol in suite.protocols:
            units = [u for u in suite.units if u.protocol == protocol and u.split == split]
            if not units:
                continue
            if many:
                matrix = _task_matrix(runs, units)
                view[key][protocol] = None if matrix is None else summarize_runs(matrix)
            else:
                view[key][protocol] = runs[0]["aggregates"].get(key, {}).get(protocol)
    iid = [u for u in suite.units if u.protocol == "offline-iid" and u.split == "test"]
    pairs = {(u.env_id, u.split): u for u in suite.units if u.protocol == shifted_protocol(suite)}
    iid = [u for u in iid if (u.env_id, u.split) in pairs]
    view["drop"] = None
    if iid:
        a, b = _task_matrix(runs, iid), _task_matrix(runs, [pairs[(u.env_id, u.split)] for u in iid])
        if a is not None and b is not None:
            view["drop"] = {"value": float((a - b).mean()),
                            "ci95": summarize_runs(a - b)["mean_ci95"] if many else None}
    families = {env_slug(u.env_id) for u in suite.units}
    walls = [w for w in (_training_seconds(r, families) for r in runs) if w is not None]
    view["training_seconds"] = float(np.mean(walls)) if walls else None
    view["training_runs"] = len(walls)
    for unit in suite.units:
        records = [next(u for u in r["units"] if u["unit_id"] == unit.unit_id) for r in runs]
        failures = [(k, rec["failure"]) for k, rec in enumerate(records, start=1) if rec["status"] != "ok"]
        if failures:
            summary = None
        elif many:
            summary = summarize_runs(_task_matrix(runs, [unit]))
        else:
            summary = records[0]["summary"]
        returns = [x for rec in records if rec["status"] == "ok" for x in rec["scored_returns"]]
        view["units"].append({"unit_id": unit.unit_id, "env_id": unit.env_id, "split": unit.split,
                              "protocol": unit.protocol, "summary": summary, "failures": failures,
                              # each run's own mean, in filing order: how far apart the training runs land
                              "run_means": None if failures else [float(np.mean(rec["scores"])) for rec in records],
                              # what the peers' papers report: the mean undiscounted return of a scored episode
                              "raw_return": float(np.mean(returns)) if returns and not failures else None})
    return view
