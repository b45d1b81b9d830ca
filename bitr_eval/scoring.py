"""Scores from episodes: a unit's record (per-(task, seed) normalised scores and summaries) and
a result's aggregates. The evaluator writes them with these functions and the leaderboard
recomputes them with the same ones, so a filed number always follows from the episodes.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from bitr_eval.stats import summarize
from bitr_eval.suites import PROTOCOLS, Unit


def unit_record(unit: Unit, seeds, episodes: list[dict], failure: Optional[str]) -> dict:
    """The unit's result: raw episodes, normalised scores per (task, seed), summaries."""
    from bitr_envs.datasets import load
    from bitr_envs.datasets.loader import read_metadata

    dataset_ids = [d for d in (unit.context_dataset, unit.reference_dataset) if d]
    record = {
        "unit_id": unit.unit_id, "env_id": unit.env_id, "split": unit.split, "protocol": unit.protocol,
        "status": "failed" if failure else "ok", "failure": failure,
        "datasets": [{"id": d, "sha256": read_metadata(d)["bitr_data_sha256"]} for d in dict.fromkeys(dataset_ids)],
        "episodes": episodes, "scores": [], "summary": None, "first_episode": None, "success_rate": None,
    }
    if failure:
        return record
    references = load(unit.reference_dataset).reference_returns
    n_tasks = len(references["random"])

    def normalised(task, value):
        low, high = references["random"][task], references["expert"][task]
        return 100.0 * (value - low) / (high - low)

    def per_task_seed(select) -> np.ndarray:
        return np.array([
            [np.mean([normalised(t, e["return"]) for e in episodes if e["task"] == t and e["seed"] == s and select(e)])
             for s in seeds]
            for t in range(n_tasks)
        ])

    scores = per_task_seed(lambda e: e["phase"] == "score")
    record["scores"] = scores.tolist()
    record["summary"] = summarize(scores)
    if unit.protocol == "online":
        record["first_episode"] = summarize(per_task_seed(lambda e: e["episode"] == 0))
    successes = [e["success"] for e in episodes if e["phase"] == "score" and e["success"] is not None]
    record["success_rate"] = float(np.mean(successes)) if successes else None
    return record


def aggregates(units: list[dict]) -> dict:
    """Per protocol, every (env, task, seed) score of the suite together; and per env the drop
    from offline-iid to offline-ood context (positive = the agent suffers under context shift)."""
    result = {"protocols": {}, "ood_drop": {}}
    for protocol in PROTOCOLS:
        done = [u for u in units if u["protocol"] == protocol]
        if done and all(u["status"] == "ok" for u in done):
            result["protocols"][protocol] = summarize(np.concatenate([np.array(u["scores"]) for u in done]))
        else:
            result["protocols"][protocol] = None  # a failed or missing unit: no aggregate
    by_key = {(u["env_id"], u["split"], u["protocol"]): u for u in units}
    for (env_id, split, protocol), unit in by_key.items():
        if protocol != "offline-iid":
            continue
        ood = by_key.get((env_id, split, "offline-ood"))
        key = f"{env_id}/{split}"
        if unit["status"] == "ok" and ood is not None and ood["status"] == "ok":
            result["ood_drop"][key] = unit["summary"]["mean"] - ood["summary"]["mean"]
        else:
            result["ood_drop"][key] = None
    return result
