"""The leaderboard: a folder of board entries, each one or more checked result files (training
runs), and the two pages rendered from it.

    bitr leaderboard add RUN1.json RUN2.json RUN3.json --name "FOCAL (lite)"
    bitr leaderboard render        write README.md and index.html from the filed entries

An entry lives in `results/<suite>/<slug of its name>/`: `entry.json` (its name and run files)
and `run-1.json`, `run-2.json`, ... (the result files as submitted, one per training run of
the same agent: same spec and arguments, different checkpoints).

A result file is data from strangers. `add` (and `render`, again) accepts one only if it can
be compared with the others and proves its numbers: the suite run whole under its current
definition; every episode of every unit present once, within the horizon, finite; every score,
unit summary and aggregate recomputed from the episodes and the recorded reference returns;
those references equal to the local datasets' where they are present; the dataset checksums
equal to the pinned ones where the benchmark pins them, and to every other filed result's.
Whether a row is ranked is not taken from the file: the built-in anchors (`random`, `oracle`)
and anything privileged (the `oracle` spec, or a submission that says so) are reference rows.

Every string taken from a result is escaped on output, and index.html runs only its own script
(a Content-Security-Policy pins it by hash).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import re
from pathlib import Path

import numpy as np

from bitr_envs.datasets.ids import env_slug
from bitr_envs.files import write_json_atomic
from bitr_eval.replay import VERIFICATION_FILE
from bitr_eval.results import OldSchemaError, ResultError, load_result
from bitr_eval.scoring import TOLERANCE, verify
from bitr_eval.stats import summarize_runs
from bitr_eval.suites import SUITES

RESULTS = "results"  # the filed entries, one folder per suite
ENTRY_FILE = "entry.json"
ANCHOR_AGENTS = ("random", "oracle")  # built-in agent specs shown as anchors, never ranked


def slug(name: str) -> str:
    """A folder name for an entry name: lower-case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "submission"


# Checking -----------------------------------------------------------------------------------

def check(result: dict) -> None:
    """Refuse a (schema-valid) result that cannot be compared with the others of its suite, or
    whose numbers do not follow from its episodes and references."""
    name = result["suite"]["name"]
    if name not in SUITES:
        raise ResultError(f"unknown suite {name!r}: the leaderboard has {', '.join(SUITES)}")
    suite = SUITES[name]
    if result["suite"]["fingerprint"] != suite.fingerprint():
        raise ResultError(f"suite fingerprint differs from the {name} suite's current definition: "
                          f"evaluate again with this version of bitr-bench")
    if list(result["suite"]["seeds"]) != list(suite.seeds):
        raise ResultError(f"suite/seeds is {result['suite']['seeds']}, the {name} suite's are {list(suite.seeds)}")
    expected = {unit.unit_id: unit for unit in suite.units}
    records = {record["unit_id"]: record for record in result["units"]}
    listed = result["suite"]["units"]
    if sorted(listed) != sorted(expected) or sorted(records) != sorted(expected) or len(records) != len(result["units"]):
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
    verify(result, suite)  # every score, summary and aggregate from the episodes
    _check_pins(result)
    _check_local_references(result)
    _check_dataset_hashes([result])  # one dataset, one hash, within the file too


def _check_pins(result: dict) -> None:
    """Refuse dataset checksums that differ from the benchmark's pinned ones."""
    from bitr_envs.datasets.storage import pinned

    for unit in result["units"]:
        for i, dataset in enumerate(unit["datasets"]):
            pin = pinned(dataset["id"])
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


def _check_dataset_hashes(results: list[dict]) -> None:
    """Refuse results that read different data, or used other references, under one dataset id."""
    hashes: dict[str, tuple[str, str]] = {}
    references: dict[tuple[str, str], dict] = {}
    for result in results:
        for unit in result["units"]:
            for dataset in unit["datasets"]:
                mine = (dataset["data_sha256"], dataset["content_sha256"])
                known = hashes.setdefault(dataset["id"], mine)
                if known != mine:
                    raise ResultError(
                        f"mismatched data: dataset {dataset['id']} has sha256 {mine[0][:12]}... (content "
                        f"{mine[1][:12]}...) in {result['submission']['name']!r} but {known[0][:12]}... (content "
                        f"{known[1][:12]}...) in another unit or result; evaluate on the published datasets "
                        f"(`bitr datasets verify`)")
            if unit["references"] is not None:
                key = (unit["env_id"], unit["split"])
                known_refs = references.setdefault(key, unit["references"])
                if known_refs != unit["references"]:
                    raise ResultError(f"mismatched references: unit {unit['unit_id']} of {result['submission']['name']!r} "
                                      f"normalises with other reference returns than another unit or result")


def role(runs: list[dict]) -> str:
    """'anchor' (a built-in anchor agent), 'privileged' (told the task), or 'ranked'. Decided
    from the agent spec as well as the file's flag: a file cannot rank the oracle."""
    agents = {r["submission"]["agent"] for r in runs}
    if agents & set(ANCHOR_AGENTS):
        return "anchor"
    if any(r["submission"]["privileged"] for r in runs):
        return "privileged"
    return "ranked"


def check_runs(runs: list[dict]) -> None:
    """Refuse runs that are not one entry: the same suite, agent spec and arguments, different checkpoints."""
    first = runs[0]
    for i, run in enumerate(runs[1:], start=2):
        for field in ("agent", "agent_args"):
            if run["submission"][field] != first["submission"][field]:
                raise ResultError(f"run {i}: submission/{field} differs from run 1's: the runs of one entry are "
                                  f"the same agent")
        if (run["suite"]["name"], run["suite"]["fingerprint"]) != (first["suite"]["name"], first["suite"]["fingerprint"]):
            raise ResultError(f"run {i}: another suite than run 1's")
        algos = {(r["submission"].get("training") or {}).get("algo") for r in (first, run)} - {None}
        if len(algos) > 1:
            raise ResultError(f"run {i}: trained with another algorithm than run 1 ({', '.join(sorted(algos))})")
    checkpoints = [r["submission"]["checkpoint"] for r in runs]
    if len(set(checkpoints)) != len(checkpoints):
        raise ResultError("two runs have the same checkpoint: the runs of an entry are different training runs")


# Filing -------------------------------------------------------------------------------------

def _load_checked(path: Path) -> dict:
    result = load_result(path)
    try:
        check(result)
    except ResultError as err:
        raise ResultError(f"{path}: {err}") from None
    return result


def filed(directory: str | Path) -> tuple[list[dict], list[str]]:
    """Every filed entry that still passes the checks ({"name", "path", "suite", "runs"}), and a
    warning for each skipped file or entry (an old schema says how to make the file again)."""
    entries, warnings = [], []
    root = Path(directory, RESULTS)
    for suite_dir in sorted(p for p in root.glob("*") if p.is_dir()):
        for path in sorted(suite_dir.glob("*.json")):  # loose files: the layout before entries
            try:
                load_result(path)
                warnings.append(f"skipped {path}: a result file outside an entry folder; file it with "
                                f"`bitr leaderboard add {path} --name NAME`")
            except OldSchemaError as err:
                warnings.append(f"skipped {err}, then `bitr leaderboard add NEW.json`")
            except ResultError as err:
                warnings.append(f"skipped {path}: {err}")
        for folder in sorted(p for p in suite_dir.glob("*") if p.is_dir()):
            try:
                entries.append(_load_entry(folder))
            except OldSchemaError as err:
                warnings.append(f"skipped entry {folder}: {err}, then `bitr leaderboard add` the new files")
            except ResultError as err:
                warnings.append(f"skipped entry {folder}: {err}")
    return entries, warnings


def _load_entry(folder: Path) -> dict:
    try:
        meta = json.loads((folder / ENTRY_FILE).read_text())
        name, files = meta["name"], meta["runs"]
        if not (isinstance(name, str) and name and isinstance(files, list) and files
                and all(isinstance(f, str) and re.fullmatch(r"run-\d+\.json", f) for f in files)):
            raise ValueError("needs a name and a list of run-<k>.json files")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ResultError(f"{folder / ENTRY_FILE} is not a valid entry file ({err})") from None
    runs = [_load_checked(folder / f) for f in files]
    check_runs(runs)
    suite_name = runs[0]["suite"]["name"]
    if suite_name != folder.parent.name:
        raise ResultError(f"an entry of the {suite_name} suite filed under {folder.parent.name}")
    verification = folder / VERIFICATION_FILE
    return {"name": name, "path": folder, "suite": suite_name, "runs": runs,
            "verification": json.loads(verification.read_text()) if verification.exists() else None}


def add(paths, directory: str | Path = "leaderboard", name: str | None = None, replace: bool = False) -> Path:
    """Check the result files `paths` (the training runs of one agent) against the board and file
    copies of them as one entry named `name` (default: the runs' common submission name); return
    the entry's folder."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ResultError("no result file given")
    runs = [_load_checked(Path(p)) for p in paths]
    check_runs(runs)
    if name is None:
        names = {r["submission"]["name"] for r in runs}
        if len(names) != 1:
            raise ResultError(f"the runs have different submission names ({', '.join(sorted(names))}): "
                              f"name the entry with --name")
        name = names.pop()
    if not name.strip() or len(name) > 100:
        raise ResultError("an entry name has 1 to 100 characters")
    suite_name = runs[0]["suite"]["name"]
    target = Path(directory, RESULTS, suite_name, slug(name))
    entries, _ = filed(directory)
    for other in entries:
        same_name = other["suite"] == suite_name and other["name"] == name
        if other["path"] == target and not same_name:
            raise ResultError(f"{target} already holds {other['name']!r}: choose a name that differs in its "
                              f"letters or digits")
        if same_name and not replace:
            raise ResultError(f"{name!r} is already on the {suite_name} board ({other['path']}); --replace "
                              f"replaces it")
    _check_dataset_hashes([r for e in entries if e["path"] != target for r in e["runs"]] + runs)
    if target.exists():
        for old in target.glob("*.json"):
            old.unlink()
    files = [f"run-{k}.json" for k in range(1, len(runs) + 1)]
    for file, run in zip(files, runs):
        write_json_atomic(target / file, run)
    write_json_atomic(target / ENTRY_FILE, {"name": name, "runs": files})
    return target


class ResultsPageError(ValueError):
    """The results page to refresh is missing or has no tables block."""


def render(directory: str | Path = "leaderboard", results_page: str | Path | None = None) -> list[str]:
    """Write README.md, index.html and one figure per suite (plots/<suite>.svg) from the filed
    entries, and refresh the tables block of `results_page` if given (checked before anything is
    written); return the warnings about skipped files."""
    page_text = None
    if results_page is not None:
        if not Path(results_page).is_file():
            raise ResultsPageError(f"no results page at {results_page}: give the Markdown page whose tables to refresh")
        page_text = Path(results_page).read_text(encoding="utf-8")
        _table_block(page_text)
    entries, warnings = filed(directory)
    views = [{**entry_view(e["name"], e["runs"]), "verification": e["verification"]} for e in entries]
    Path(directory, "README.md").write_text(markdown(views), encoding="utf-8")
    Path(directory, "index.html").write_text(page(views), encoding="utf-8")
    plots = Path(directory, "plots")
    plots.mkdir(exist_ok=True)
    suites = by_suite(views)
    for stale in set(plots.glob("*.svg")) - {plots / f"{name}.svg" for name, _ in suites}:
        stale.unlink()
    for suite_name, suite_views in suites:
        (plots / f"{suite_name}.svg").write_text(figure(suite_views, SUITES[suite_name].protocols) + "\n",
                                                   encoding="utf-8")
    if page_text is not None:
        figures = Path(os.path.relpath(plots, Path(results_page).parent)).as_posix()
        Path(results_page).write_text(with_results_tables(page_text, views, figures), encoding="utf-8")
    return warnings


# Statistics of an entry ---------------------------------------------------------------------

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


def entry_view(name: str, runs: list[dict]) -> dict:
    """What the pages show of an entry: per protocol the mean and IQM with 95% intervals (over
    training runs when there are several, else over evaluation seeds), the iid->ood drop, the
    training wall time, and per unit the same."""
    suite = SUITES[runs[0]["suite"]["name"]]
    many = len(runs) > 1
    view = {"name": name, "agent": runs[0]["submission"]["agent"], "role": role(runs), "runs": len(runs),
            "suite": suite.name, "started": max(r["started"] for r in runs), "protocols": {}, "units": [],
            # the weakest sandbox any unit ran in: only "bwrap" keeps the datasets and files out of reach
            "isolation": "bwrap" if all(u.get("isolation") == "bwrap" for r in runs for u in r["units"]) else "process"}
    for protocol in suite.protocols:
        units = [u for u in suite.units if u.protocol == protocol]
        if many:
            matrix = _task_matrix(runs, units)
            view["protocols"][protocol] = None if matrix is None else summarize_runs(matrix)
        else:
            view["protocols"][protocol] = runs[0]["aggregates"]["protocols"].get(protocol)
    iid = [u for u in suite.units if u.protocol == "offline-iid"]
    pairs = {(u.env_id, u.split): u for u in suite.units if u.protocol == "offline-ood"}
    iid = [u for u in iid if (u.env_id, u.split) in pairs]
    view["drop"] = None
    if iid:
        a, b = _task_matrix(runs, iid), _task_matrix(runs, [pairs[(u.env_id, u.split)] for u in iid])
        if a is not None and b is not None:
            view["drop"] = {"value": float((a - b).mean()),
                            "ci95": summarize_runs(a - b)["mean_ci95"] if many else None}
    walls = [(r["submission"].get("training") or {}).get("wall_seconds") for r in runs]
    walls = [w for w in walls if isinstance(w, (int, float))]
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
        returns = [e["return"] for rec in records if rec["status"] == "ok" for e in rec["episodes"]
                   if e["phase"] == "score"]
        view["units"].append({"unit_id": unit.unit_id, "env_id": unit.env_id, "split": unit.split,
                              "protocol": unit.protocol, "summary": summary, "failures": failures,
                              # each run's own mean, in filing order: how far apart the training runs land
                              "run_means": None if failures else [float(np.mean(rec["scores"])) for rec in records],
                              # what the peers' papers report: the mean undiscounted return of a scored episode
                              "raw_return": float(np.mean(returns)) if returns and not failures else None})
    return view


# What both pages show -----------------------------------------------------------------------

INTRO = ("Normalised score per task: 0 = random, 100 = expert. An entry is one or more training runs of an "
         "agent; per protocol its mean over every (env, task) of the suite and its interquartile mean (IQM), "
         "each with a 95% stratified-bootstrap confidence interval (10,000 resamples; strata: tasks). With "
         "several runs the runs are resampled, so the interval covers training seeds; a single run (marked) "
         "only has evaluation seeds to resample, so its interval is narrower than it should be. "
         "iid→ood drop = offline-iid mean − offline-ood mean over the same tasks (positive: the agent "
         "suffers under context shift). An entry with a failed unit has no score for that protocol. "
         "Anchors (random, oracle) and privileged agents (told the task) are shown for reference, never ranked. "
         "Every number is recomputed from the filed episodes.")
SINGLE = "1 (single run)"


def by_suite(views: list[dict]) -> list[tuple[str, list[dict]]]:
    """The suites that have entries, in definition order; entries by name."""
    return [(name, sorted((v for v in views if v["suite"] == name), key=lambda v: v["name"]))
            for name in SUITES if any(v["suite"] == name for v in views)]


def score(view: dict, protocol: str, key: str = "mean"):
    summary = view["protocols"].get(protocol)
    return None if summary is None else summary[key]


def summary_text(summary: dict | None, key: str = "mean", missing: str = "failed") -> str:
    """'mean [low, high]' (or the IQM's) of a summary record."""
    if summary is None:
        return missing
    low, high = summary[f"{key}_ci95"]
    return f"{summary[key]:.1f} [{low:.1f}, {high:.1f}]"


def ci_text(view: dict, protocol: str, key: str = "mean") -> str:
    return summary_text(view["protocols"].get(protocol), key)


def drop_text(view: dict) -> str:
    d = view["drop"]
    if d is None:
        return "–"
    return f"{d['value']:.1f}" + ("" if d["ci95"] is None else f" [{d['ci95'][0]:.1f}, {d['ci95'][1]:.1f}]")


def drop_value(view: dict):
    return None if view["drop"] is None else view["drop"]["value"]


def runs_text(view: dict) -> str:
    """The number of training runs, and whether a maintainer's re-play matched the filed returns."""
    text = SINGLE if view["runs"] == 1 else str(view["runs"])
    if view["isolation"] != "bwrap":
        text += "; weaker sandbox"
    verification = view.get("verification")
    if verification:
        replayed = len(verification["units"])
        text += f"; re-played {replayed} unit{'s' if replayed > 1 else ''}: " + (
            "matched" if verification["matched"] else "DIFFERED")
    return text


def wall_text(view: dict) -> str:
    seconds = view["training_seconds"]
    if seconds is None:
        return "–"
    text = f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
    partial = view["training_runs"] < view["runs"]
    return text + (f" ({view['training_runs']} of {view['runs']} runs)" if partial else "")


def standings(views: list[dict], protocol: str) -> list[tuple[int | None, dict]]:
    """(rank, entry) of the ranked entries, best mean first (ties share a rank); no score: last."""
    ranked = [v for v in views if v["role"] == "ranked"]
    scored = sorted((v for v in ranked if score(v, protocol) is not None), key=lambda v: -score(v, protocol))
    return ([(1 + sum(score(o, protocol) > score(v, protocol) for o in scored), v) for v in scored]
            + [(None, v) for v in ranked if score(v, protocol) is None])


def display_name(view: dict) -> str:
    """The entry's name, with its role when it is not ranked ("oracle (anchor)")."""
    return view["name"] + ("" if view["role"] == "ranked" else f" ({view['role']})")


def references(views: list[dict]) -> list[dict]:
    return [v for v in views if v["role"] != "ranked"]


def first_line(failure: str | None) -> str:
    """A failure's summary: tracebacks follow on the next lines."""
    return (failure or "no reason given").strip().split("\n")[0][:200]


def latest(views: list[dict]) -> str:
    return max(v["started"] for v in views)


# README.md ----------------------------------------------------------------------------------

def md(text) -> str:
    """Text from a result file, inert in a Markdown table cell: no HTML, no formatting, one line."""
    text = html.escape(" ".join(str(text).split()), quote=False)
    return re.sub(r"([\\`*_\[\]|~])", r"\\\1", text)


HEADER = ["Entry", "Agent", "Runs", "Score (mean [95% CI])", "IQM [95% CI]", "iid→ood drop", "Training time"]


def markdown(views: list[dict]) -> str:
    lines = ["# BITR-Bench leaderboard", "",
             "Generated by `bitr leaderboard render` from `results/` (file an entry with "
             "`bitr leaderboard add RUN1.json [RUN2.json ...] --name NAME`); do not edit by hand.", "", INTRO, "",
             f"Latest result started: {md(latest(views))}." if views else "No results filed yet."]
    header = "| " + " | ".join(HEADER) + " |"
    rule = "| --- | --- | ---: | --- | --- | --- | ---: |"
    for suite_name, entries in by_suite(views):
        lines += ["", f"## Suite {suite_name}", "", SUITES[suite_name].description]
        for protocol in SUITES[suite_name].protocols:
            lines += ["", f"### {protocol}", "", "| Rank " + header, "| ---: " + rule]
            for rank, v in standings(entries, protocol):
                lines.append(f"| {rank or '–'} " + _md_row(v, protocol))
            others = references(entries)
            if others:
                lines += ["", "Anchors and privileged references (not ranked):", "", "| Role " + header,
                          "| --- " + rule]
                lines += [f"| {v['role']} " + _md_row(v, protocol) for v in others]
        failed = [f"- {md(v['name'])}, {md(u['unit_id'])}" + (f" (run {k})" if v["runs"] > 1 else "")
                  + f": {md(first_line(failure))}"
                  for v in entries for u in v["units"] for k, failure in u["failures"]]
        if failed:
            lines += ["", "### Failed units", ""] + failed
    return "\n".join(lines) + "\n"


RESULTS_BEGIN = "<!-- results tables: written by `bitr leaderboard render --results-page`; do not edit by hand -->"
RESULTS_END = "<!-- end of results tables -->"


def results_tables(views: list[dict], figures: str = "plots") -> str:
    """Per suite, its figure (from the folder `figures`), then one row per entry and a column per
    protocol: the mean, then the IQM, with 95% intervals, and the raw returns per unit; ranked
    entries by their first protocol's mean, then the references."""
    lines = []
    for suite_name, entries in by_suite(views):
        protocols = SUITES[suite_name].protocols
        lines += ["", f"### Suite `{suite_name}`", "", SUITES[suite_name].description, "",
                  f"![normalised score per protocol, suite {suite_name}]({figures}/{suite_name}.svg)"]
        ordered = [v for _, v in standings(entries, protocols[0])] + references(entries)
        for key, title in (("mean", "Mean"), ("iqm", "IQM")):
            lines += ["", f"{title} normalised score [95% CI]:", "",
                      "| Entry | Runs | " + " | ".join(protocols) + (" | iid→ood drop | Training time |" if key == "mean"
                                                                      else " |"),
                      "| --- | --- |" + " ---: |" * (len(protocols) + (2 if key == "mean" else 0))]
            for v in ordered:
                name = md(display_name(v))
                cells = [name, runs_text(v)] + [ci_text(v, p, key) for p in protocols]
                if key == "mean":
                    cells += [drop_text(v), wall_text(v)]
                lines.append("| " + " | ".join(cells) + " |")
        if all(":" not in p for p in protocols):  # the plain protocols: the units the peers' tables have
            units = [u.unit_id for u in SUITES[suite_name].units]
            lines += ["", "Raw return of a scored episode (mean over training runs, tasks, seeds and episodes):", "", "| Entry | " + " | ".join(f"`{u}`" for u in units) + " |",
                      "| --- |" + " ---: |" * len(units)]
            for v in ordered:
                raw = {u["unit_id"]: u["raw_return"] for u in v["units"]}
                lines.append(f"| {md(display_name(v))} | " + " | ".join("–" if raw[u] is None else f"{raw[u]:.1f}"
                                                                  for u in units) + " |")
        lines += per_family_tables(ordered, SUITES[suite_name])
    return "\n".join(lines[1:])


def per_family_tables(ordered: list[dict], suite) -> list[str]:
    """Per env family of `suite`, one row per entry and a column per unit of the family: the
    mean over runs, then each run's own mean in filing order, so a reader sees which runs carry
    an entry."""
    lines = []
    for family in dict.fromkeys(env_slug(u.env_id) for u in suite.units):
        units = [u for u in suite.units if env_slug(u.env_id) == family]
        lines += ["", f"`{family}`, mean normalised score (each run's, in filing order):", "",
                  "| Entry | " + " | ".join(f"`{u.unit_id.removeprefix(family + '/')}`" for u in units) + " |",
                  "| --- |" + " ---: |" * len(units)]
        for v in ordered:
            by_id = {u["unit_id"]: u for u in v["units"]}
            lines.append(f"| {md(display_name(v))} | " + " | ".join(_runs_cell(by_id[u.unit_id]) for u in units) + " |")
    return lines


def _runs_cell(unit: dict) -> str:
    """'82.0 (92 / 82 / 61)': the mean over runs, then each run's; one run: its mean alone."""
    if unit["summary"] is None:
        return "failed"
    runs = unit["run_means"]
    return f"{unit['summary']['mean']:.1f}" + (" (" + " / ".join(f"{m:.0f}" for m in runs) + ")" if len(runs) > 1 else "")


def _table_block(text: str) -> tuple[str, str]:
    """(what comes before the tables block, what comes after it) of a results page."""
    begin, end = text.find(RESULTS_BEGIN), text.find(RESULTS_END)
    if begin < 0 or end < begin:
        raise ResultsPageError(f"the results page has no table block: put the two lines\n{RESULTS_BEGIN}\n{RESULTS_END}\n"
                         "where the tables go, in that order")
    return text[:begin], text[end + len(RESULTS_END):]


def with_results_tables(text: str, views: list[dict], figures: str = "plots") -> str:
    """`text` with its tables block replaced by fresh tables; `figures` is the plots folder,
    relative to the page."""
    head, tail = _table_block(text)
    return f"{head}{RESULTS_BEGIN}\n{results_tables(views, figures)}\n{RESULTS_END}{tail}"


def _md_row(view: dict, protocol: str) -> str:
    cells = [md(view["name"]), md(view["agent"]), runs_text(view), ci_text(view, protocol),
             ci_text(view, protocol, "iqm"), drop_text(view), wall_text(view)]
    return "| " + " | ".join(cells) + " |"


# index.html ---------------------------------------------------------------------------------

CSS = """body{font:15px/1.45 system-ui,sans-serif;color:#1b1f24;max-width:1100px;margin:0 auto;padding:1rem 1.5rem}
h2{border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.4rem 0 1.2rem;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:600;padding:.3rem 0}
th,td{padding:.3rem .7rem;border-bottom:1px solid #e3e7eb;text-align:left;vertical-align:top;white-space:nowrap}
th button{font:inherit;font-weight:600;color:inherit;background:none;border:0;padding:0;cursor:pointer}
th[aria-sort=ascending] button::after{content:" \\25B2"}
th[aria-sort=descending] button::after{content:" \\25BC"}
td:last-child{white-space:normal}
td.num{text-align:right}
.failed{color:#b42318}
.muted{color:#57606a}
tbody.anchors th{font-weight:600;padding-top:.8rem}
tbody.anchors td{color:#57606a}
fieldset{border:1px solid #d0d7de;border-radius:6px;margin:1rem 0}
fieldset label{margin-right:1rem;white-space:nowrap}
svg.plot{width:100%;max-width:760px;height:auto}
"""

JS = """"use strict";
const collator = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});
function sortKey(row, column) {
  const cell = row.cells[column];
  return cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
}
function compareKeys(a, b) {
  const x = Number(a), y = Number(b);
  return Number.isFinite(x) && Number.isFinite(y) ? x - y : collator.compare(a, b);
}
function sortTable(th) {
  const direction = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
  for (const other of th.parentElement.cells) other.removeAttribute("aria-sort");
  th.setAttribute("aria-sort", direction === 1 ? "ascending" : "descending");
  const body = th.closest("table").tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = sortKey(a, th.cellIndex), y = sortKey(b, th.cellIndex);
    if (x === "" || y === "") return (x === "") - (y === "");  // no value (failed): last either way
    return direction * compareKeys(x, y);
  });
  body.append(...rows);
}
function applyFilters() {
  const families = new Set(Array.from(document.querySelectorAll("input[name=family]:checked"), box => box.value));
  const env = document.getElementById("env-filter").value;
  for (const row of document.querySelectorAll("tr[data-family]")) {
    row.hidden = !families.has(row.dataset.family) || (env !== "" && row.dataset.env !== env);
  }
}
for (const button of document.querySelectorAll("table.sortable th button")) {
  button.addEventListener("click", () => sortTable(button.closest("th")));
}
for (const control of document.querySelectorAll("fieldset input, fieldset select")) {
  control.addEventListener("change", applyFilters);
}
"""

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def esc(text) -> str:
    """Text from a result file, inert in HTML and SVG: escaped, and without the control
    characters XML forbids (one would make a standalone figure unreadable)."""
    return html.escape(_CONTROL.sub("\ufffd", str(text)))


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def _colours(index: int, view: dict) -> tuple[str, str]:
    """(stroke, fill) of an entry's marker in the plot: reference rows are hollow."""
    colour = PALETTE[index % len(PALETTE)]
    return colour, colour if view["role"] == "ranked" else "#fff"


def _num(text: str, value, cls: str = "num") -> str:
    """A cell sorted by `value` (None: no value, sorted last)."""
    key = "" if value is None else f"{value:.6g}"
    return f'<td class="{cls}" data-sort="{key}">{text}</td>'


def _table(caption: str, header: list[str], rows: list[str], tail: str = "") -> str:
    """A table sortable by any column; `tail` (a second tbody) stays put below the sorted rows."""
    head = "".join(f'<th scope="col"><button type="button">{h}</button></th>' for h in header)
    return (f'<table class="sortable"><caption>{caption}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody>{tail}</table>")


def _ranking_row(rank_cell: str, v: dict, protocol: str) -> str:
    style = "" if score(v, protocol) is not None else "failed"
    runs = f'<span title="a single training run: the interval covers evaluation seeds only">{SINGLE}</span>' \
        if v["runs"] == 1 else str(v["runs"])
    return (f"<tr>{rank_cell}<td>{esc(v['name'])}</td><td><code>{esc(v['agent'])}</code></td>"
            + _num(runs, v["runs"])
            + _num(ci_text(v, protocol), score(v, protocol), style)
            + _num(ci_text(v, protocol, "iqm"), score(v, protocol, "iqm"), style)
            + _num(drop_text(v), drop_value(v)) + _num(wall_text(v), v["training_seconds"]) + "</tr>")


def _unit_rows(entries: list[dict]) -> list[str]:
    from bitr_envs.registry import entry

    rows = []
    for v in entries:
        name = esc(display_name(v))
        for u in v["units"]:
            family, s = entry(u["env_id"]).family, u["summary"]
            status = "ok" if not u["failures"] else "; ".join(
                f'<span class="failed" title="{esc(failure)}">failed'
                + (f" (run {k})" if v["runs"] > 1 else "") + f": {esc(first_line(failure))}</span>"
                for k, failure in u["failures"])
            cells = [f"<td>{name}</td>"] + [f"<td>{esc(x)}</td>" for x in (family, u["env_id"], u["split"], u["protocol"])]
            cells += [_num(summary_text(s, missing="–"), None if s is None else s["mean"], ""),
                      _num("–" if s is None else f"{s['iqm']:.1f}", None if s is None else s["iqm"]),
                      f"<td>{status}</td>"]
            rows.append(f'<tr data-family="{esc(family)}" data-env="{esc(u["env_id"])}">{"".join(cells)}</tr>')
    return rows


def figure(entries: list[dict], protocols: list[str]) -> str:
    """Normalised score per protocol: each entry's mean with its 95% CI bar, legend below; a
    standalone SVG (hand-written: a few lines and dots need no plotting library)."""
    width, plot_height, left, top, bottom = 760, 290, 60, 14, 44
    columns, row_height = 3, 18
    legend_rows = -(-len(entries) // columns)
    height = plot_height + 8 + legend_rows * row_height
    values = [0.0, 100.0] + [x for v in entries for p in protocols if score(v, p) is not None
                             for x in v["protocols"][p]["mean_ci95"]]
    step = 25
    while (max(values) - min(values)) / step > 8:
        step *= 2
    low, high = step * math.floor(min(values) / step), step * math.ceil(max(values) / step)

    def y(value: float) -> str:
        return f"{top + (high - value) / (high - low) * (plot_height - top - bottom):.1f}"

    band = (width - left) / len(protocols)
    parts = [f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="normalised score per protocol" font-family="sans-serif" font-size="12" fill="#1b1f24">',
             f'<rect width="{width}" height="{height}" fill="#fff"/>']
    for tick in range(low, high + 1, step):
        dash = ' stroke-dasharray="4 3"' if tick in (0, 100) else ""  # random and expert
        parts.append(f'<line x1="{left}" x2="{width}" y1="{y(tick)}" y2="{y(tick)}" stroke="#d0d7de"{dash}/>'
                     f'<text x="{left - 6}" y="{y(tick)}" text-anchor="end" dominant-baseline="middle">{tick}</text>')
    for b, protocol in enumerate(protocols):
        # "offline-ood:detour" in two lines, the behaviour above its protocol: nine fit side by side
        lines = protocol.split(":")[::-1]
        x = f"{left + band * (b + .5):.1f}"
        parts.append(f'<text x="{x}" y="{plot_height - 22}" text-anchor="middle">'
                     + "".join(f'<tspan x="{x}" dy="{0 if i == 0 else 14}">{esc(line)}</tspan>'
                               for i, line in enumerate(lines)) + "</text>")
        for i, v in enumerate(entries):
            summary = v["protocols"].get(protocol)
            if summary is None:
                continue
            (stroke, fill), (lo, hi) = _colours(i, v), summary["mean_ci95"]
            x = f"{left + band * (b + (i + 1) / (len(entries) + 1)):.1f}"
            parts.append(f'<g stroke="{stroke}" stroke-width="2"><title>{esc(display_name(v))}, {esc(protocol)}: '
                         f'{ci_text(v, protocol)}</title><line x1="{x}" x2="{x}" y1="{y(lo)}" y2="{y(hi)}"/>'
                         f'<circle cx="{x}" cy="{y(summary["mean"])}" r="4.5" fill="{fill}"/></g>')
    parts.append(f'<text transform="translate(16 {(plot_height - bottom) / 2:.0f}) rotate(-90)" text-anchor="middle">'
                 "normalised score</text>")
    column_width = (width - left) / columns
    for i, v in enumerate(entries):
        stroke, fill = _colours(i, v)
        x, y_row = left + column_width * (i % columns), plot_height + 8 + row_height * (i // columns)
        label = display_name(v)
        parts.append(f'<circle cx="{x + 6:.1f}" cy="{y_row + 6}" r="4.5" stroke="{stroke}" stroke-width="2" '
                     f'fill="{fill}"/><text x="{x + 16:.1f}" y="{y_row + 6}" dominant-baseline="middle">'
                     f'{esc(label)}</text>')
    return "".join(parts) + "</svg>"


def page(views: list[dict]) -> str:
    from bitr_envs.registry import entry

    suites = by_suite(views)
    envs = sorted({u["env_id"] for v in views for u in v["units"]})
    families = sorted({entry(e).family for e in envs})
    body = [f"<h1>BITR-Bench leaderboard</h1><p>{esc(INTRO)}</p>",
            f'<p class="muted">Latest result started: {esc(latest(views))}.</p>' if views
            else "<p>No results filed yet.</p>"]
    if envs:
        boxes = "".join(f'<label><input type="checkbox" name="family" value="{esc(f)}" checked> {esc(f)}</label>'
                        for f in families)
        options = "".join(f'<option value="{esc(e)}">{esc(e)}</option>' for e in envs)
        body.append(f"<fieldset><legend>Units shown in the per-unit tables</legend>{boxes}"
                    f'<label for="env-filter">env</label> <select id="env-filter"><option value="">all</option>'
                    f"{options}</select></fieldset>")
    header = ["Rank"] + HEADER
    for suite_name, entries in suites:
        protocols = SUITES[suite_name].protocols
        body.append(f'<section id="suite-{esc(suite_name)}"><h2>Suite {esc(suite_name)}</h2>'
                    f"<p>{esc(SUITES[suite_name].description)}</p>{figure(entries, protocols)}")
        for protocol in protocols:
            ranking = [_ranking_row(_num(rank or "–", rank), v, protocol) for rank, v in standings(entries, protocol)]
            others = [_ranking_row(f'<td class="muted">{v["role"]}</td>', v, protocol) for v in references(entries)]
            tail = (f'<tbody class="anchors"><tr><th colspan="{len(header)}">Anchors and privileged references '
                    "(not ranked)</th></tr>" + "".join(others) + "</tbody>") if others else ""
            body.append(_table(esc(protocol), header, ranking, tail))
        body.append(_table("Per unit", ["Entry", "Family", "Env", "Split", "Protocol", "Score (mean [95% CI])",
                                        "IQM", "Status"], _unit_rows(entries)) + "</section>")
    policy = f"default-src 'none'; style-src {_csp_hash(CSS)}; script-src {_csp_hash(JS)}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>BITR-Bench leaderboard</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + f"\n<script>{JS}</script></body></html>\n")
