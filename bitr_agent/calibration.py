"""Whether a family can say anything about task representations: the task-given ceiling against
the context-free floor on it.

A family joins the board once the learner, told the task, clearly beats the same learner told
nothing (`CEILING_AT_LEAST` and `GAP_AT_LEAST` on its test tasks); otherwise most of the distance
to the expert is the learner's, not the task inference's. Both references ignore their context,
so the offline-iid units of a suite (`lite-more-v1-calibration`) measure them under every
offline protocol. `calibration_table` reads their result files, checked in full (every score
recomputed from the episodes), from a sweep folder: `<runs>/<algo>/seed<k>/result-<suite>.json`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bitr_agent.sweep import result_file

CEILING, FLOOR = "oracle_task", "context_free"
CEILING_AT_LEAST, GAP_AT_LEAST = 60.0, 20.0


def _seed_scores(runs: Path, algo: str, suite_name: str) -> dict[int, dict[str, float]]:
    """seed -> unit id -> the run's mean normalised score, of every checked result file."""
    from bitr_eval.filing import load_checked

    scores = {}
    for folder in sorted((runs / algo).glob("seed*")):
        seed = re.fullmatch(r"seed(\d+)", folder.name)
        path = folder / result_file(suite_name)
        if seed is None or not path.is_file():
            continue
        result = load_checked(path)
        scores[int(seed[1])] = {u["unit_id"]: float(np.mean(u["scores"])) for u in result["units"]
                                if u["status"] == "ok"}
    return scores


def calibration_table(runs: Path, suite_name: str = "lite-more-v1-calibration") -> str:
    """Per unit of `suite_name`, the ceiling's and the floor's score (each run's, seed order, and
    their mean), the gap, and whether the family's test tasks pass the bar, as Markdown."""
    from bitr_eval.suites import suite

    ceiling, floor = _seed_scores(runs, CEILING, suite_name), _seed_scores(runs, FLOOR, suite_name)
    if not ceiling or not floor:
        raise ValueError(f"{runs}: no result-{suite_name}.json of both {CEILING} and {FLOOR} (run `bitr evaluate "
                         f"--suite {suite_name}` on their seed<k> folders)")
    lines = ["| Unit | Ceiling (each run) | Ceiling | Floor (each run) | Floor | Gap | Joins the board |",
             "| --- | --- | ---: | --- | ---: | ---: | --- |"]
    for unit in suite(suite_name).units:
        tops = [s[unit.unit_id] for _, s in sorted(ceiling.items()) if unit.unit_id in s]
        bottoms = [s[unit.unit_id] for _, s in sorted(floor.items()) if unit.unit_id in s]
        if not tops or not bottoms:
            continue
        top, bottom = float(np.mean(tops)), float(np.mean(bottoms))
        verdict = "–" if unit.split != "test" else _verdict(top, bottom)
        lines.append(f"| `{unit.unit_id}` | {' / '.join(f'{x:.1f}' for x in tops)} | {top:.1f} | "
                     f"{' / '.join(f'{x:.1f}' for x in bottoms)} | {bottom:.1f} | {top - bottom:.1f} | {verdict} |")
    return "\n".join(lines)


def _verdict(ceiling: float, floor: float) -> str:
    if ceiling >= CEILING_AT_LEAST and ceiling - floor >= GAP_AT_LEAST:
        return "yes"
    if ceiling < floor:
        return "no: the floor beats the ceiling"
    if ceiling < CEILING_AT_LEAST:
        return f"no: ceiling below {CEILING_AT_LEAST:.0f}"
    return "no: ceiling too near the floor"
