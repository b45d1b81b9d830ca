"""Scores from episodes: a unit's record (per-(task, seed) normalised scores and summaries) and
a result's aggregates. The evaluator writes them with these functions and the leaderboard
recomputes them with the same ones, so a filed number always follows from the episodes.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from bitr_eval.results import ResultError
from bitr_eval.stats import summarize
from bitr_eval.suites import PROTOCOLS, V0_PROTOCOLS, Protocol, Unit


def dataset_records(unit: Unit) -> list[dict]:
    """The unit's datasets with both checksums, computed from their files now."""
    from bitr_envs.datasets.storage import file_hashes

    ids = dict.fromkeys(d for d in (unit.context_dataset, unit.reference_dataset) if d)
    return [{"id": d, **file_hashes(d)} for d in ids]


def reference_returns(dataset_id: str) -> dict[str, list[float]]:
    """The random and expert reference return of every task, from a local dataset's metadata."""
    from bitr_envs.datasets.loader import read_metadata

    references = read_metadata(dataset_id)["bitr_reference_returns"]
    return {key: [float(v) for v in references[key]] for key in ("random", "expert")}


def unit_record(unit: Unit, seeds, episodes: list[dict], failure: Optional[str], isolation: str = "process") -> dict:
    """The unit's result: raw episodes, the references and data it used, normalised scores per
    (task, seed), summaries. `isolation` says how the agent ran (the runner's choice)."""
    record = {
        "unit_id": unit.unit_id, "env_id": unit.env_id, "split": unit.split, "protocol": unit.protocol,
        "status": "failed" if failure else "ok", "failure": failure,
        "datasets": dataset_records(unit), "references": None, "isolation": isolation,
        "episodes": episodes, "scores": [], "summary": None, "first_episode": None, "success_rate": None,
    }
    if failure:
        return record
    record["references"] = reference_returns(unit.reference_dataset)
    record.update(score_episodes(unit, seeds, episodes, record["references"]))
    return record


def score_episodes(unit: Unit, seeds, episodes: list[dict], references: dict) -> dict:
    """What follows from a unit's episodes and reference returns: `scores` (normalised, per task
    and seed: the mean over the scored episodes), `summary`, `first_episode` (online) and
    `success_rate`. Pure: the leaderboard calls it again on a submitted file."""
    from bitr_envs.registry import entry

    n_tasks = len(references["random"])
    if entry(unit.env_id).env_class.pooled_references:  # one scale for the split (`MetaTaskMixin`)
        lows, highs = [float(np.mean(references["random"]))] * n_tasks, [float(np.mean(references["expert"]))] * n_tasks
    else:
        lows, highs = references["random"], references["expert"]

    def normalised(task, value):
        return 100.0 * (value - lows[task]) / (highs[task] - lows[task])

    def per_task_seed(select) -> np.ndarray:
        groups: dict[tuple, list[float]] = {}  # (task, seed) -> its episodes' scores, in list order
        for e in episodes:
            if select(e):
                groups.setdefault((e["task"], e["seed"]), []).append(normalised(int(e["task"]), e["return"]))
        return np.array([[np.mean(groups.get((t, s), [])) for s in seeds] for t in range(n_tasks)])

    scores = per_task_seed(lambda e: e["phase"] == "score")
    successes = [e["success"] for e in episodes if e["phase"] == "score" and e["success"] is not None]
    return {
        "scores": scores.tolist(),
        "summary": summarize(scores),
        "first_episode": summarize(per_task_seed(lambda e: e["episode"] == 0)) if unit.protocol == "online" else None,
        "success_rate": float(np.mean(successes)) if successes else None,
    }


def expected_episodes(unit: Unit, seeds, n_tasks: int) -> dict[tuple[int, int, int], str]:
    """(task, seed, episode index) -> phase of every episode the unit plays."""
    online = unit.kind.base == "online"
    n = unit.explore_episodes + unit.episodes if online else unit.episodes
    return {(t, s, k): ("explore" if online and k < unit.explore_episodes else "score")
            for t in range(n_tasks) for s in seeds for k in range(n)}


def aggregates(units: list[dict]) -> dict:
    """What a result sums up, from its unit records:
    - `protocols`: per protocol, every (env, task, seed) score of the test tasks together;
    - `ood_tasks`: the same on the ood tasks (suites that score them);
    - `context_drops`: per env and split, offline-iid's mean minus each shifted context's
      (positive = the agent suffers under that context shift);
    - `ood_drop` (the v0 suites): offline-iid's mean minus offline-ood's, per env and split."""
    v0 = any(Protocol.parse(u["protocol"]).base == "offline-ood" for u in units)
    bases = V0_PROTOCOLS if v0 else PROTOCOLS
    result = {"protocols": _per_protocol([u for u in units if u["split"] != "ood"], bases)}
    ood_units = [u for u in units if u["split"] == "ood"]
    if ood_units:
        result["ood_tasks"] = _per_protocol(ood_units, bases)
    if v0:
        result["ood_drop"] = {key: drops.get("offline-ood") for key, drops in _drops(units, ["offline-ood"]).items()}
    else:
        result["context_drops"] = _drops(units, SHIFTED_CONTEXTS)
    return result


SHIFTED_CONTEXTS = ("offline-other-task", "offline-unseen")


def _per_protocol(units: list[dict], bases) -> dict:
    """Per protocol (every base protocol, then the units' own), the summary of every unit's
    scores together; None where a unit failed or none was run."""
    result = {}
    for protocol in dict.fromkeys([*bases, *(u["protocol"] for u in units)]):
        done = [u for u in units if u["protocol"] == protocol]
        ok = done and all(u["status"] == "ok" for u in done)
        result[protocol] = summarize(np.concatenate([np.array(u["scores"]) for u in done])) if ok else None
    return result


def _drops(units: list[dict], shifted) -> dict[str, dict]:
    """Per env and split with an offline-iid unit, offline-iid's mean minus each shifted
    protocol's that the result holds (None where either unit failed)."""
    by_key = {(u["env_id"], u["split"], u["protocol"]): u for u in units}
    result = {}
    for (env_id, split, protocol), unit in by_key.items():
        if protocol != "offline-iid":
            continue
        drops = {}
        for other in shifted:
            pair = by_key.get((env_id, split, other))
            if pair is not None:
                ok = unit["status"] == "ok" and pair["status"] == "ok"
                drops[other] = unit["summary"]["mean"] - pair["summary"]["mean"] if ok else None
        result[f"{env_id}/{split}"] = drops
    return result


# Checking a submitted result -------------------------------------------------------------------

TOLERANCE = 1e-6  # relative: the same code on another machine may round the last bits differently


def _mismatch(recorded, computed, path: str) -> Optional[str]:
    """Where `recorded` differs from `computed` (path, both values), or None."""
    if isinstance(computed, dict):
        if not isinstance(recorded, dict) or set(recorded) != set(computed):
            return f"{path} is {_short(recorded)}, expected keys {sorted(computed)}"
        for key in computed:
            found = _mismatch(recorded[key], computed[key], f"{path}/{key}")
            if found:
                return found
        return None
    if isinstance(computed, (list, tuple)):
        if not isinstance(recorded, (list, tuple)) or len(recorded) != len(computed):
            return f"{path} is {_short(recorded)}, the episodes give {len(computed)} values"
        for i, (r, c) in enumerate(zip(recorded, computed)):
            found = _mismatch(r, c, f"{path}[{i}]")
            if found:
                return found
        return None
    if computed is None or isinstance(computed, (bool, str)):
        return None if recorded == computed else f"{path} is {_short(recorded)}, the episodes give {computed!r}"
    if (isinstance(recorded, bool) or not isinstance(recorded, (int, float))
            or not math.isfinite(recorded) or abs(recorded - computed) > TOLERANCE * max(1.0, abs(computed))):
        return f"{path} is {_short(recorded)}, the episodes give {computed!r}"
    return None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def verify_unit(unit: Unit, seeds, record: dict, n_tasks: int, horizon: int) -> None:
    """Refuse a unit record whose episodes are incomplete or whose numbers do not follow from its
    episodes and references; the ResultError names the unit and the field."""
    where = f"unit {unit.unit_id}"
    if record["status"] != "ok":
        if record["scores"] or record["summary"] is not None or record["first_episode"] is not None:
            raise ResultError(f"{where}: a failed unit holds scores or summaries")
        return
    references = record["references"]
    if references is None:
        raise ResultError(f"{where}: references missing: the scores cannot be checked")
    for key in ("random", "expert"):
        values = references[key]
        if len(values) != n_tasks or not all(math.isfinite(v) for v in values):
            raise ResultError(f"{where}: references/{key} must hold one finite return for each of the "
                              f"{n_tasks} tasks of the {unit.split} split")
    if any(e == r for e, r in zip(references["expert"], references["random"])):
        raise ResultError(f"{where}: references: an expert return equals the random one")
    if "play_order" in record:
        from bitr_eval.worker import check_play_order

        try:
            check_play_order(record["play_order"], n_tasks, seeds)
        except ValueError as err:
            raise ResultError(f"{where}: play_order: {err}") from None
    problem = _episode_problem(unit, seeds, record["episodes"], n_tasks, horizon)
    if problem:
        raise ResultError(f"{where}: {problem}")
    computed = score_episodes(unit, seeds, record["episodes"], references)
    for field, value in computed.items():
        found = _mismatch(record[field], value, field)
        if found:
            raise ResultError(f"{where}: {found}")


def _episode_problem(unit: Unit, seeds, episodes: list[dict], n_tasks: int, horizon: int) -> Optional[str]:
    """What is wrong with a unit's episodes, or None: the first episode (in list order) that is
    not one of the unit's, repeats an earlier one, has the wrong phase, runs past the horizon or
    has a non-finite return; else the episodes the unit should have and lacks. One array per
    field, each check over all episodes at once."""
    seed_values = np.array(list(seeds), dtype=np.float64)
    online = unit.kind.base == "online"
    per_seed = unit.explore_episodes + unit.episodes if online else unit.episodes
    task, seed, index, length, returns = (np.array([e[key] for e in episodes], dtype=np.float64)
                                          for key in ("task", "seed", "episode", "length", "return"))
    scored = np.array([e["phase"] == "score" for e in episodes], dtype=bool)
    known = np.isin(task, np.arange(n_tasks)) & np.isin(seed, seed_values) & np.isin(index, np.arange(per_seed))
    seed_position = np.argmax(seed[:, None] == seed_values[None, :], axis=1)
    key = np.where(known, (task * len(seed_values) + seed_position) * per_seed + index,
                   -1.0 - np.arange(len(episodes)))  # an unknown episode: a key of its own
    repeated = np.ones(len(episodes), dtype=bool)
    repeated[np.unique(key, return_index=True)[1]] = False  # every key's first episode is no repeat
    should_score = ~(online & (index < unit.explore_episodes))
    checks = [  # in this order for each episode: what is wrong with episode i, the first found
        (~known, lambda i: " is not an episode of the unit"),
        (repeated, lambda i: " is duplicated"),
        (known & (scored != should_score),
         lambda i: f": phase {episodes[i]['phase']!r}, expected {'score' if should_score[i] else 'explore'!r}"),
        (length > horizon, lambda i: f": length {episodes[i]['length']} exceeds the horizon {horizon}"),
        (~np.isfinite(returns), lambda i: ": return is not finite"),
    ]
    bad = np.flatnonzero(np.logical_or.reduce([failed for failed, _ in checks]))
    if len(bad):
        i = int(bad[0])
        e = episodes[i]
        what = next(message for failed, message in checks if failed[i])
        return f"episodes[{i}] (task {e['task']}, seed {e['seed']}, episode {e['episode']}){what(i)}"
    expected = expected_episodes(unit, seeds, n_tasks)
    if len(episodes) == len(expected):  # each one of the unit's, none twice: all there
        return None
    missing = sorted(set(expected) - {(e["task"], e["seed"], e["episode"]) for e in episodes})
    t, s, k = missing[0]
    return f"episodes: {len(missing)} missing (first: task {t}, seed {s}, episode {k})"


def verify(result: dict, suite) -> None:
    """Recompute every per-(task, seed) score, unit summary and aggregate of a result of `suite`
    (whose units it must hold, checked before) from its episodes and references."""
    from bitr_envs.registry import entry

    units = {u.unit_id: u for u in suite.units}
    for record in result["units"]:
        unit = units[record["unit_id"]]
        env = entry(unit.env_id)
        verify_unit(unit, suite.seeds, record, env.num_tasks(unit.split), env.horizon)
    found = _mismatch(result["aggregates"], aggregates(result["units"]), "aggregates")
    if found:
        raise ResultError(found.replace("the episodes give", "the unit records give"))
