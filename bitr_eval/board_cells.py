"""What every page of the board shows: the suites in order, the ranking, and the text of each
cell. The pages (`board_markdown`, `board_html`, `figures`) only lay these out."""

from __future__ import annotations

import datetime
from typing import NamedTuple

from bitr_eval.entry_stats import shifted_protocol
from bitr_eval.suites import SUITES

INTRO = ("Normalised score per task: 0 = random, 100 = expert. An entry is one or more training runs of an "
         "agent; per protocol its mean over every (env, task) of the suite and its interquartile mean (IQM), "
         "each with a 95% stratified-bootstrap confidence interval (10,000 resamples; strata: tasks). With "
         "several runs the runs are resampled, so the interval covers training seeds; a single run (marked) "
         "only has evaluation seeds to resample, so its interval is narrower than it should be. "
         "iid→ood drop = offline-iid mean − offline-ood mean over the same tasks (positive: the agent "
         "suffers under context shift); on the current (-v1) suites the drop is to offline-other-task, context "
         "from a policy pursuing another task, and the scores are over the test tasks, with the ood tasks' "
         "offline-iid score in a column of its own. An entry with a failed unit has no score for that protocol. "
         "A suite's entries scored sealed (on a maintainer's secret draw of the test tasks) are ranked in a section "
         "of their key, apart from the entries of another key and from those scored on the public test split: "
         "only entries of one section were scored on the same tasks. Anchors (random, oracle) and privileged "
         "agents (told the task) are shown for reference, never ranked. "
         "Every number is recomputed from the filed episodes.")
SINGLE = "1 (single run)"


class Section(NamedTuple):
    """The entries of one suite scored on the same tasks: one sealing key's, or the public split's."""
    suite: str
    key: str | None  # the sealing key's sha256; None: the public test split
    entries: list[dict]

    @property
    def title(self) -> str:
        return self.suite + (f", sealed draw {self.key[:8]}" if self.key else "")

    @property
    def stem(self) -> str:
        """The section's file stem (its figures, its HTML anchor)."""
        return self.suite + (f"-{self.key[:8]}" if self.key else "")


def sections(views: list[dict]) -> list[Section]:
    """The board's sections: every sealed one first (the board's scores that recognition of known
    tasks cannot reach), then the public ones; each group in suite definition order, a suite's
    keys most recently scored first; entries by name."""
    found = []
    for order, name in enumerate(SUITES):
        views_of = [v for v in views if v["suite"] == name]
        for key in {v.get("sealed") for v in views_of}:
            entries = sorted((v for v in views_of if v.get("sealed") == key), key=lambda v: v["name"])
            found.append(((key is None, order, -max(_seconds(v["started"]) for v in entries)),
                          Section(name, key, entries)))
    return [section for _, section in sorted(found, key=lambda pair: pair[0])]


def _seconds(started: str) -> float:
    return datetime.datetime.fromisoformat(started).timestamp()


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
    if view.get("sealed"):
        text += "; sealed"  # its section names the key
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
    """(rank, entry) of the ranked entries of one section, best mean first (ties share a rank);
    no score: last."""
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


def header(suite_name: str) -> list[str]:
    """The ranking tables' columns: the current suites' drop is to the other-task context, and
    they have the ood tasks' score."""
    if shifted_protocol(SUITES[suite_name]) == "offline-ood":
        return ["Entry", "Agent", "Runs", "Score (mean [95% CI])", "IQM [95% CI]", "iid→ood drop", "Training time"]
    return ["Entry", "Agent", "Runs", "Score, test tasks (mean [95% CI])", "IQM [95% CI]", "iid→other-task drop",
            "ood tasks, offline-iid", "Training time"]


def ood_text(view: dict) -> str:
    """The ood tasks' offline-iid score of a current suite's entry: what the score becomes when
    the task itself lies outside the training range."""
    return summary_text(view["ood_tasks"].get("offline-iid"), missing="–")
