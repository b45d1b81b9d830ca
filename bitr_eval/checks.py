"""The checks of a result file: can it be compared with the others of its suite, and do its
numbers follow from its episodes?

A result file is data from strangers. One is accepted only if the suite was run whole under its
current definition; every episode of every unit is present once, within the horizon, finite;
every score, unit summary and aggregate is recomputed from the episodes and the recorded
reference returns (`bitr_eval.scoring.verify`); those references equal the local datasets'
where they are present; the dataset checksums equal the pinned ones where the benchmark pins
them, and every other filed result's (`check_dataset_hashes`). The runs of one board entry
must be the same agent (`check_runs`).

A sealed result (`bitr_eval.sealed`) read other datasets than the pinned ones: only the holder
of its key can check them (`check_sealed_data`, when it is filed); on every later read its
numbers are still recomputed from its episodes and references.
"""

from __future__ import annotations

import functools
import os

from bitr_eval.results import ResultError, sealing_key
from bitr_eval.scoring import TOLERANCE, verify
from bitr_eval.suites import SUITES


def check(result: dict) -> None:
    """Refuse a (schema-valid) result that cannot be compared with the others of its suite, or
    whose numbers do not follow from its episodes and references."""
    _check_suite(result)
    verify(result, SUITES[result["suite"]["name"]])  # every score, summary and aggregate from the episodes
    if not result.get("sealed"):
        _check_datasets(result)


def recheck(record: dict) -> None:
    """Refuse a result accepted before (its board record, `bitr_eval.check_cache`) that fails
    what may have changed since: the suite's definition, the pins, the local datasets."""
    _check_suite(record)
    if not record.get("sealed"):
        _check_datasets(record)


def check_sealed_data(result: dict, seal) -> None:
    """Refuse a sealed result whose key is not `seal` (None: no key given), or whose datasets
    and references are not those the key's datasets give (built first where missing)."""
    from bitr_envs.datasets.storage import file_hashes, minari_root_at
    from bitr_eval.sealed import prepare

    key_sha256 = result["sealed"]["key_sha256"]
    if seal is None or seal.key_sha256 != key_sha256:
        which = "" if seal is None else ", the key it was scored with"
        raise ResultError(f"a sealed result (key sha256 {key_sha256[:12]}...): only that key's holder can check its "
                          f"data; file it with --sealed KEYFILE{which}")
    suite = SUITES[result["suite"]["name"]]
    prepare(seal, {d: u.env_id for u in suite.units for d in (u.context_dataset, u.reference_dataset) if d})
    with minari_root_at(seal.root):
        _check_local_references(result)
        check_dataset_hashes([result])
        hashes = {d["id"]: d for unit in result["units"] for d in unit["datasets"]}
        for dataset_id, dataset in hashes.items():
            if dataset != {"id": dataset_id, **file_hashes(dataset_id)}:
                raise ResultError(f"{dataset_id} of this result is not the key's dataset: it was scored on other data")


def _check_suite(result: dict) -> None:
    """Refuse a result that is not a whole run of one of the suites as they are defined now."""
    name = result["suite"]["name"]
    if name not in SUITES:
        raise ResultError(f"unknown suite {name!r}: the leaderboard has {', '.join(SUITES)}")
    suite = SUITES[name]
    if result["suite"]["fingerprint"] != _fingerprint(suite):
        raise ResultError(f"suite fingerprint differs from the {name} suite's current definition: "
                          f"evaluate again with this version of bitr-bench")
    if list(result["suite"]["seeds"]) != list(suite.seeds):
        raise ResultError(f"suite/seeds is {result['suite']['seeds']}, the {name} suite's are {list(suite.seeds)}")
    expected = {unit.unit_id: unit for unit in suite.units}
    records = {record["unit_id"]: record for record in result["units"]}
    listed = result["suite"]["units"]
    whole = sorted(listed) == sorted(expected) == sorted(records) and len(records) == len(result["units"])
    if not whole:
        missing = sorted(set(expected) - set(records) | set(expected) - set(listed))
        raise ResultError(f"the {name} suite must be run whole: missing or extra units "
                          f"(missing: {', '.join(missing) or 'none'}); a run with --env covers only those "
                          f"envs: the same `bitr evaluate` command without --env completes the file")
    for unit_id, unit in expected.items():
        record = records[unit_id]
        datasets = {d for d in (unit.context_dataset, unit.reference_dataset) if d}
        if ((record["env_id"], record["split"], record["protocol"]) != (unit.env_id, unit.split, unit.protocol)
                or {d["id"] for d in record["datasets"]} != datasets or len(record["datasets"]) != len(datasets)):
            raise ResultError(f"unit {unit_id} does not match the {name} suite's definition of it")


@functools.cache
def _fingerprint(suite) -> str:
    """A (frozen) suite's fingerprint, computed once: the board asks for it once per file."""
    return suite.fingerprint()


def _check_datasets(result: dict) -> None:
    """Refuse a result whose datasets or references differ from the pinned or local ones."""
    _check_pins(result)
    _check_local_references(result)
    check_dataset_hashes([result])  # one dataset, one hash, within the file too


def _check_pins(result: dict) -> None:
    """Refuse dataset checksums that differ from the benchmark's pinned ones."""
    from bitr_envs.datasets.storage import pins

    pinned = pins()  # read once: a result names each dataset in many units
    for unit in result["units"]:
        for i, dataset in enumerate(unit["datasets"]):
            pin = pinned.get(dataset["id"])
            if pin is None:
                continue
            for key in ("data_sha256", "content_sha256"):
                if dataset[key] != pin[key]:
                    raise ResultError(
                        f"unit {unit['unit_id']}: datasets[{i}]/{key} of {dataset['id']} is {dataset[key][:12]}..., "
                        f"the benchmark pins {pin[key][:12]}...: evaluate on the published datasets "
                        f"(`bitr datasets verify {dataset['id']}`)")


def _check_local_references(result: dict) -> None:
    """Refuse reference returns that differ from those of the datasets present on this machine."""
    from bitr_envs.datasets.storage import exists
    from bitr_eval.scoring import reference_returns

    suite = SUITES[result["suite"]["name"]]
    units = {u.unit_id: u for u in suite.units}
    local: dict[str, dict] = {}
    for record in result["units"]:
        if record["references"] is None:
            continue
        dataset_id = units[record["unit_id"]].reference_dataset
        if dataset_id not in local:
            local[dataset_id] = reference_returns(dataset_id) if exists(dataset_id) else None
        if local[dataset_id] is None:
            continue
        for key in ("random", "expert"):
            for task, (mine, theirs) in enumerate(zip(record["references"][key], local[dataset_id][key])):
                if abs(mine - theirs) > TOLERANCE * max(1.0, abs(theirs)):
                    raise ResultError(
                        f"unit {record['unit_id']}: references/{key}[{task}] is {mine!r}, the dataset "
                        f"{dataset_id} says {theirs!r}")


def check_dataset_hashes(results: list[dict]) -> None:
    """Refuse results that read different data, or used other references, under one dataset id.
    A sealed result's datasets are its key's, built on other tasks under the public ids: they are
    compared with the results of the same key only."""
    hashes: dict[tuple, tuple[str, str]] = {}
    references: dict[tuple, dict] = {}
    for result in results:
        key_sha256 = sealing_key(result)  # None: the public datasets
        for unit in result["units"]:
            for dataset in unit["datasets"]:
                mine = (dataset["data_sha256"], dataset["content_sha256"])
                known = hashes.setdefault((key_sha256, dataset["id"]), mine)
                if known != mine:
                    raise ResultError(
                        f"mismatched data: dataset {dataset['id']} has sha256 {mine[0][:12]}... (content "
                        f"{mine[1][:12]}...) in {result['submission']['name']!r} but {known[0][:12]}... (content "
                        f"{known[1][:12]}...) in another unit or result; evaluate on the published datasets "
                        f"(`bitr datasets verify`)")
            if unit["references"] is not None:
                known_refs = references.setdefault((key_sha256, unit["env_id"], unit["split"]), unit["references"])
                if known_refs != unit["references"]:
                    raise ResultError(f"mismatched references: unit {unit['unit_id']} of "
                                      f"{result['submission']['name']!r} normalises with other reference returns "
                                      f"than another unit or result")


def check_runs(runs: list[dict]) -> None:
    """Refuse runs that are not one entry: the same suite, agent spec and arguments, different checkpoints."""
    first = runs[0]
    for i, run in enumerate(runs[1:], start=2):
        for field in ("agent", "agent_args"):
            if run["submission"][field] != first["submission"][field]:
                raise ResultError(f"run {i}: submission/{field} differs from run 1's: the runs of one entry are "
                                  f"the same agent")
        if any(run["suite"][key] != first["suite"][key] for key in ("name", "fingerprint")):
            raise ResultError(f"run {i}: another suite than run 1's")
        algos = {(r["submission"].get("training") or {}).get("algo") for r in (first, run)} - {None}
        if len(algos) > 1:
            raise ResultError(f"run {i}: trained with another algorithm than run 1 ({', '.join(sorted(algos))})")
    checkpoints = [None if c is None else os.path.normpath(c) for c in (r["submission"]["checkpoint"] for r in runs)]
    if len(set(checkpoints)) != len(checkpoints):
        raise ResultError("two runs have the same checkpoint: the runs of an entry are different training runs")
    # the same returns, return for return, where they vary: a copy (a floor that scores one value
    # everywhere, such as 0 on a sparse reward, gives the same returns honestly)
    played = [tuple(x for u in r["units"] for x in _scored_returns(u)) for r in runs]
    varied = [p for p in played if len(set(p)) > 1]
    if len(set(varied)) != len(varied):
        raise ResultError("two runs have the same episodes, return for return: one run filed twice is not two "
                          "training runs")


def _scored_returns(unit: dict) -> list[float]:
    """A unit's scored returns, from a whole result or a board record (which keeps only these)."""
    if "scored_returns" in unit:
        return unit["scored_returns"]
    return [e["return"] for e in unit["episodes"] if e["phase"] == "score"]


def check_pinned_suite(result: dict) -> None:
    """Refuse a result of a suite whose datasets the benchmark does not pin: two such results may
    have read different data under one id, so their scores cannot be compared."""
    from bitr_envs.datasets.storage import pins

    pinned = pins()
    unpinned = [d for d in SUITES[result["suite"]["name"]].datasets if d not in pinned]
    if unpinned:
        raise ResultError(f"the {result['suite']['name']} suite's datasets are not pinned yet ({len(unpinned)}, e.g. "
                          f"{unpinned[0]}): its results cannot be filed until the benchmark pins them")
