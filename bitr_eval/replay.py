"""`bitr leaderboard verify`: re-play a sample of a filed entry's units and compare the returns.

    bitr leaderboard verify leaderboard/results/lite/bitr-lite --units 2

A result file proves that its numbers follow from its episodes; this proves that the episodes
follow from the submission. For each run of the entry, `units` units (a sample drawn from the
operating system's secret randomness, so that no file can know which, or all) are played again
from the recorded agent, checkpoint and arguments with the suite's seeds, and every episode's
return is compared with the filed one. What the file says of itself is checked by the re-play
too: the sandbox a unit ran in, and whether the submission is privileged (decided again by the
evaluator's own probe). A sealed entry is re-played with its key. On the machine and software that made a
result an honest agent matches to the last bit (`--tolerance 0`); on another machine its
returns differ where its own floating point differs, so the tolerance there is the
maintainer's call. The outcome is written beside the entry (`verification.json`) and shown on
the board.
"""

from __future__ import annotations

import contextlib
import datetime
import platform
import secrets
from pathlib import Path

import numpy as np

from bitr_envs.files import write_json_atomic
from bitr_eval.filing import VERIFICATION_FILE, load_entry
from bitr_eval.results import ResultError


def sample_units(result: dict, units: int | None, seed: int | None = None) -> list[str]:
    """The unit ids to re-play: all of them (`units` None) or a random sample, drawn from the
    operating system's secret randomness unless a `seed` is given."""
    ids = [u["unit_id"] for u in result["units"] if u["status"] == "ok"]
    if units is None or units >= len(ids):
        return ids
    rng = np.random.default_rng(secrets.randbits(128) if seed is None else seed)
    return sorted(rng.choice(ids, size=units, replace=False).tolist())


def compare(filed: list[dict], replayed: list[dict], tolerance: float) -> tuple[bool, float, str | None]:
    """(matched, largest relative difference, what differs first) of two episode lists."""
    key = lambda e: (e["task"], e["seed"], e["episode"])  # noqa: E731
    by_key = {key(e): e for e in replayed}
    worst = 0.0
    for episode in filed:
        other = by_key.get(key(episode))
        if other is None:
            return False, worst, f"episode {key(episode)} was not played again"
        difference = abs(other["return"] - episode["return"]) / (1.0 + abs(episode["return"]))
        worst = max(worst, difference)
        if difference > tolerance or other["length"] != episode["length"]:
            return False, worst, (f"episode (task, seed, index) {key(episode)}: return {other['return']:.6g} "
                                  f"over {other['length']} steps, filed {episode['return']:.6g} over "
                                  f"{episode['length']}")
    return True, worst, None


def verify_entry(folder: str | Path, units: int | None = 1, tolerance: float = 0.0, jobs: int = 1,
                 seal=None) -> dict:
    """Re-play `units` units of every run of the entry in `folder` (a sealed entry's with `seal`,
    its key); write and return the outcome."""
    from concurrent.futures import ThreadPoolExecutor

    from bitr_envs.datasets.storage import minari_root_at
    from bitr_eval.agents import is_privileged
    from bitr_eval.runner import run_unit, unit_limits
    from bitr_eval.sandbox import isolation_level
    from bitr_eval.sealed import prepare
    from bitr_eval.suites import suite

    folder = Path(folder)
    entry = load_entry(folder, episodes=True)
    chosen = suite(entry["suite"])
    units_by_id = {u.unit_id: u for u in chosen.units}
    sealed = entry["runs"][0].get("sealed")
    if sealed and (seal is None or seal.key_sha256 != sealed["key_sha256"]):
        raise ResultError(f"{folder}: a sealed entry is played again with its key: --sealed KEYFILE (key sha256 "
                          f"{sealed['key_sha256'][:12]}...)")
    isolation = isolation_level()
    checks = []
    for k, result in enumerate(entry["runs"], start=1):
        file = f"run-{k}.json"
        # the evaluator's own decision, never the file's word
        submission = {**result["submission"], "privileged": is_privileged(result["submission"], isolation)}
        for unit_id in sample_units(result, units):  # a secret sample for each run
            filed = next(u for u in result["units"] if u["unit_id"] == unit_id)
            checks.append((file, unit_id, filed, submission, result["submission"]["privileged"]))

    def replay(check):
        file, unit_id, filed, submission, claimed = check
        unit = units_by_id[unit_id]
        record = run_unit(unit, chosen.seeds, submission, chosen.episode_time_limit_s,
                          limits=unit_limits(chosen, unit), order=filed.get("play_order"),
                          sealing=seal.unit_sealing(unit.env_id) if sealed else None)
        outcome = {"run": file, "unit": unit_id, "matched": False, "max_relative_difference": None}
        if claimed != submission["privileged"]:
            return {**outcome, "first_difference": f"the file says privileged {claimed}, the evaluator's probe "
                                                   f"says {submission['privileged']}"}
        if record["status"] != "ok":
            return {**outcome, "first_difference": f"the unit failed when played again: {record['failure']}"}
        if record["isolation"] != filed["isolation"]:
            return {**outcome, "first_difference": f"the file says the agent ran under {filed['isolation']!r}, "
                                                   f"the re-play ran it under {record['isolation']!r}"}
        matched, worst, first = compare(filed["episodes"], record["episodes"], tolerance)
        return {**outcome, "matched": matched, "max_relative_difference": worst, "first_difference": first}

    if sealed:
        prepare(seal, {d: u.env_id for u in chosen.units for d in (u.context_dataset, u.reference_dataset) if d})
    with minari_root_at(seal.root) if sealed else contextlib.nullcontext():
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            outcomes = list(pool.map(replay, checks))
    if not outcomes:
        raise ResultError(f"{folder}: no finished unit to play again")
    verification = {
        "matched": all(o["matched"] for o in outcomes),
        "tolerance": tolerance,
        "units": outcomes,
        "machine": {"processor": platform.processor() or platform.machine(), "system": platform.system()},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(folder / VERIFICATION_FILE, verification)
    return verification
