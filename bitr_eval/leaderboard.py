"""The leaderboard: a folder of accepted result files, and the two pages rendered from it.

    bitr leaderboard add runs/mine.json    check a result and file it as results/<suite>/<name>.json
    bitr leaderboard render                write README.md and index.html from the filed results

Only comparable results get on the board: the suite run whole, under the suite's current
definition (fingerprint), on the same data as every other result (dataset sha256s). Privileged
submissions (the oracle sees the task) are shown as anchors and never ranked.

Result files are data from strangers: every string taken from one is escaped on output, and
index.html runs only its own script (a Content-Security-Policy pins it by hash).
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import re
from pathlib import Path

from bitr_envs.datasets.storage import write_json_atomic
from bitr_eval.results import ResultError, load_result
from bitr_eval.suites import PROTOCOLS, SUITES

RESULTS = "results"  # the filed results, one folder per suite


def slug(name: str) -> str:
    """A file name for a submission name: lower-case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "submission"


def check(result: dict) -> None:
    """Refuse a (schema-valid) result that cannot be compared with the others of its suite."""
    name = result["suite"]["name"]
    if name not in SUITES:
        raise ResultError(f"unknown suite {name!r}: the leaderboard has {', '.join(SUITES)}")
    suite = SUITES[name]
    if result["suite"]["fingerprint"] != suite.fingerprint():
        raise ResultError(f"suite fingerprint differs from the {name} suite's current definition: "
                          f"evaluate again with this version of bitr-bench")
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
                or {d["id"] for d in record["datasets"]} != datasets):
            raise ResultError(f"unit {unit_id} does not match the {name} suite's definition of it")
    protocols = result["aggregates"].get("protocols", {})
    for protocol in PROTOCOLS:  # the pages show these: they must say what the units say
        failed = any(u["status"] != "ok" for u in result["units"] if u["protocol"] == protocol)
        if protocol not in protocols or (protocols[protocol] is None) != failed:
            raise ResultError(f"aggregates/protocols/{protocol} does not follow from the unit records")
    summaries = [s for s in protocols.values() if s] + [u["summary"] for u in result["units"] if u["summary"]]
    if not all(abs(v) <= 1e6 for s in summaries for v in (s["mean"], s["iqm"], *s["mean_ci95"], *s["iqm_ci95"])):
        raise ResultError("a summary holds a non-finite or absurd (beyond +-1e6) normalised score")
    _check_dataset_hashes([result])  # one dataset, one hash, within the file too


def _check_dataset_hashes(results: list[dict]) -> None:
    """Refuse results that read different data under one dataset id."""
    hashes: dict[str, str] = {}
    for result in results:
        for unit in result["units"]:
            for dataset in unit["datasets"]:
                known = hashes.setdefault(dataset["id"], dataset["sha256"])
                if known != dataset["sha256"]:
                    raise ResultError(
                        f"mismatched data: dataset {dataset['id']} has sha256 {dataset['sha256'][:12]}... in "
                        f"{result['submission']['name']!r} but {known[:12]}... in another unit or result; "
                        f"evaluate on the published datasets (`bitr datasets verify`)")


def filed(directory: str | Path) -> tuple[list[tuple[Path, dict]], list[str]]:
    """Every filed (path, result) that still passes the checks, and a warning for each other one."""
    board, warnings = [], []
    for path in sorted(Path(directory, RESULTS).glob("*/*.json")):
        try:
            result = load_result(path)
            check(result)
            if result["suite"]["name"] != path.parent.name:
                raise ResultError(f"a result of the {result['suite']['name']} suite filed under {path.parent.name}")
        except ResultError as err:
            warnings.append(f"skipped {path}: {err}")
            continue
        board.append((path, result))
    return board, warnings


def add(path: str | Path, directory: str | Path = "leaderboard", replace: bool = False) -> Path:
    """Check the result file `path` against the board and file a copy of it; return where."""
    result = load_result(path)
    check(result)
    name, suite_name = result["submission"]["name"], result["suite"]["name"]
    target = Path(directory, RESULTS, suite_name, slug(name) + ".json")
    board, _ = filed(directory)
    for other_path, other in board:
        same_name = other["suite"]["name"] == suite_name and other["submission"]["name"] == name
        if other_path == target and not same_name:
            raise ResultError(f"{target} already holds {other['submission']['name']!r}: choose a name that "
                              f"differs in its letters or digits")
        if same_name and not replace:
            raise ResultError(f"{name!r} is already on the {suite_name} board ({other_path}); --replace replaces it")
    _check_dataset_hashes([r for p, r in board if p != target] + [result])
    write_json_atomic(target, result)
    return target


def render(directory: str | Path = "leaderboard") -> list[str]:
    """Write README.md and index.html from the filed results; return the warnings about skipped files."""
    board, warnings = filed(directory)
    results = [result for _, result in board]
    Path(directory, "README.md").write_text(markdown(results), encoding="utf-8")
    Path(directory, "index.html").write_text(page(results), encoding="utf-8")
    return warnings


# What both pages show -----------------------------------------------------------------------

INTRO = ("Normalised score per task: 0 = random, 100 = expert; the mean over every (env, task, seed) of the "
         "suite, with its 95% stratified-bootstrap confidence interval; IQM = interquartile mean. "
         "iid→ood drop = offline-iid mean − offline-ood mean (positive: the agent suffers under context shift). "
         "A submission with a failed unit has no score for that protocol. Anchors are privileged "
         "(the oracle is told the task): shown for reference, never ranked.")


def by_suite(results: list[dict]) -> list[tuple[str, list[dict]]]:
    """The suites that have results, in definition order; ranked submissions by name, then anchors."""
    def order(r):
        return r["submission"]["privileged"], r["submission"]["name"]
    return [(name, sorted((r for r in results if r["suite"]["name"] == name), key=order))
            for name in SUITES if any(r["suite"]["name"] == name for r in results)]


def score(result: dict, protocol: str, key: str = "mean"):
    summary = result["aggregates"]["protocols"][protocol]
    return None if summary is None else summary[key]


def summary_text(summary: dict | None, key: str = "mean", missing: str = "failed") -> str:
    """'mean [low, high]' (or the IQM's) of a summary record."""
    if summary is None:
        return missing
    low, high = summary[f"{key}_ci95"]
    return f"{summary[key]:.1f} [{low:.1f}, {high:.1f}]"


def ci_text(result: dict, protocol: str, key: str = "mean") -> str:
    return summary_text(result["aggregates"]["protocols"][protocol], key)


def drop(result: dict):
    iid, ood = score(result, "offline-iid"), score(result, "offline-ood")
    return None if iid is None or ood is None else iid - ood


def standings(results: list[dict], protocol: str) -> list[tuple[int | None, dict]]:
    """(rank, result) of the non-privileged results, best mean first (ties share a rank); no score: last."""
    ranked = [r for r in results if not r["submission"]["privileged"]]
    scored = sorted((r for r in ranked if score(r, protocol) is not None), key=lambda r: -score(r, protocol))
    return ([(1 + sum(score(o, protocol) > score(r, protocol) for o in scored), r) for r in scored]
            + [(None, r) for r in ranked if score(r, protocol) is None])


def first_line(failure: str | None) -> str:
    """A failure's summary: tracebacks follow on the next lines."""
    return (failure or "no reason given").strip().split("\n")[0][:200]


def latest(results: list[dict]) -> str:
    return max(r["started"] for r in results)


def _number(value) -> str:
    return "" if value is None else f"{value:.1f}"


# README.md ----------------------------------------------------------------------------------

def md(text) -> str:
    """Text from a result file, inert in a Markdown table cell: no HTML, no formatting, one line."""
    text = html.escape(" ".join(str(text).split()), quote=False)
    return re.sub(r"([\\`*_\[\]|~])", r"\\\1", text)


def markdown(results: list[dict]) -> str:
    lines = ["# BITR-Bench leaderboard", "",
             "Generated by `bitr leaderboard render` from `results/` (file a result with "
             "`bitr leaderboard add RESULT.json`); do not edit by hand.", "", INTRO, "",
             f"Latest result started: {md(latest(results))}." if results else "No results filed yet."]
    header = "| Submission | Agent | Score (mean [95% CI]) | IQM [95% CI] | iid→ood drop |"
    rule = "| --- | --- | --- | --- | ---: |"
    for suite_name, entries in by_suite(results):
        lines += ["", f"## Suite {suite_name}", "", SUITES[suite_name].description]
        for protocol in PROTOCOLS:
            lines += ["", f"### {protocol}", "", "| Rank " + header, "| ---: " + rule]
            for rank, r in standings(entries, protocol):
                lines.append(f"| {rank or '–'} " + _md_row(r, protocol))
            anchors = [r for r in entries if r["submission"]["privileged"]]
            if anchors:
                lines += ["", "Anchors (privileged, not ranked):", "", header, rule]
                lines += [_md_row(r, protocol) for r in anchors]
        failed = [f"- {md(r['submission']['name'])}, {md(u['unit_id'])}: {md(first_line(u['failure']))}"
                  for r in entries for u in r["units"] if u["status"] != "ok"]
        if failed:
            lines += ["", "### Failed units", ""] + failed
    return "\n".join(lines) + "\n"


def _md_row(result: dict, protocol: str) -> str:
    cells = [md(result["submission"]["name"]), md(result["submission"]["agent"]), ci_text(result, protocol),
             ci_text(result, protocol, "iqm"), _number(drop(result)) or "–"]
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
ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.3rem 1.4rem}
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


def esc(text) -> str:
    return html.escape(str(text))


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def _colours(index: int, result: dict) -> tuple[str, str]:
    """(stroke, fill) of a submission's marker in the plot: anchors are hollow."""
    colour = PALETTE[index % len(PALETTE)]
    return colour, "#fff" if result["submission"]["privileged"] else colour


def _num(text: str, value, cls: str = "num") -> str:
    """A cell sorted by `value` (None: no value, sorted last)."""
    key = "" if value is None else f"{value:.6g}"
    return f'<td class="{cls}" data-sort="{key}">{text}</td>'


def _table(caption: str, header: list[str], rows: list[str], tail: str = "") -> str:
    """A table sortable by any column; `tail` (a second tbody) stays put below the sorted rows."""
    head = "".join(f'<th scope="col"><button type="button">{h}</button></th>' for h in header)
    return (f'<table class="sortable"><caption>{caption}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody>{tail}</table>")


def _ranking_row(rank_cell: str, r: dict, protocol: str) -> str:
    style = "" if score(r, protocol) is not None else "failed"
    return (f"<tr>{rank_cell}<td>{esc(r['submission']['name'])}</td><td><code>{esc(r['submission']['agent'])}</code></td>"
            + _num(ci_text(r, protocol), score(r, protocol), style)
            + _num(ci_text(r, protocol, "iqm"), score(r, protocol, "iqm"), style)
            + _num(_number(drop(r)) or "–", drop(r)) + "</tr>")


def _unit_rows(entries: list[dict]) -> list[str]:
    from bitr_envs.registry import entry

    rows = []
    for r in entries:
        name = esc(r["submission"]["name"]) + (" (anchor)" if r["submission"]["privileged"] else "")
        for u in r["units"]:
            family, s = entry(u["env_id"]).family, u["summary"] if u["status"] == "ok" else None
            status = "ok" if u["status"] == "ok" else (
                f'<span class="failed" title="{esc(u["failure"])}">failed: {esc(first_line(u["failure"]))}</span>')
            cells = [f"<td>{name}</td>"] + [f"<td>{esc(v)}</td>" for v in (family, u["env_id"], u["split"], u["protocol"])]
            cells += [_num(summary_text(s, missing="–"), None if s is None else s["mean"], ""),
                      _num("–" if s is None else f"{s['iqm']:.1f}", None if s is None else s["iqm"]),
                      f"<td>{status}</td>"]
            rows.append(f'<tr data-family="{esc(family)}" data-env="{esc(u["env_id"])}">{"".join(cells)}</tr>')
    return rows


def _plot(entries: list[dict]) -> str:
    """Normalised score per protocol: each submission's mean with its 95% CI bar (hand-written SVG)."""
    width, height, left, top, bottom = 760, 280, 60, 14, 34
    values = [0.0, 100.0] + [v for r in entries for p in PROTOCOLS if score(r, p) is not None
                             for v in r["aggregates"]["protocols"][p]["mean_ci95"]]
    step = 25
    while (max(values) - min(values)) / step > 8:
        step *= 2
    low, high = step * math.floor(min(values) / step), step * math.ceil(max(values) / step)

    def y(v: float) -> str:
        return f"{top + (high - v) / (high - low) * (height - top - bottom):.1f}"

    band = (width - left) / len(PROTOCOLS)
    parts = [f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="normalised score per protocol" font-size="12" fill="#1b1f24">']
    for tick in range(low, high + 1, step):
        dash = ' stroke-dasharray="4 3"' if tick in (0, 100) else ""  # random and expert
        parts.append(f'<line x1="{left}" x2="{width}" y1="{y(tick)}" y2="{y(tick)}" stroke="#d0d7de"{dash}/>'
                     f'<text x="{left - 6}" y="{y(tick)}" text-anchor="end" dominant-baseline="middle">{tick}</text>')
    for b, protocol in enumerate(PROTOCOLS):
        parts.append(f'<text x="{left + band * (b + .5):.1f}" y="{height - 10}" text-anchor="middle">{protocol}</text>')
        for i, r in enumerate(entries):
            summary = r["aggregates"]["protocols"][protocol]
            if summary is None:
                continue
            (stroke, fill), (lo, hi) = _colours(i, r), summary["mean_ci95"]
            x = f"{left + band * (b + (i + 1) / (len(entries) + 1)):.1f}"
            parts.append(f'<g stroke="{stroke}" stroke-width="2"><title>{esc(r["submission"]["name"])}, {protocol}: '
                         f'{ci_text(r, protocol)}</title><line x1="{x}" x2="{x}" y1="{y(lo)}" y2="{y(hi)}"/>'
                         f'<circle cx="{x}" cy="{y(summary["mean"])}" r="4.5" fill="{fill}"/></g>')
    parts.append(f'<text transform="translate(16 {(height - bottom) / 2:.0f}) rotate(-90)" text-anchor="middle">'
                 "normalised score</text></svg>")
    legend = "".join(
        '<li><svg width="12" height="12" viewBox="0 0 12 12"><circle cx="6" cy="6" r="4.5" stroke-width="2" '
        f'stroke="{_colours(i, r)[0]}" fill="{_colours(i, r)[1]}"/></svg> {esc(r["submission"]["name"])}'
        f'{" (anchor)" if r["submission"]["privileged"] else ""}</li>' for i, r in enumerate(entries))
    return "".join(parts) + f'<ul class="legend">{legend}</ul>'


def page(results: list[dict]) -> str:
    from bitr_envs.registry import entry

    suites = by_suite(results)
    envs = sorted({u["env_id"] for r in results for u in r["units"]})
    families = sorted({entry(e).family for e in envs})
    body = [f"<h1>BITR-Bench leaderboard</h1><p>{esc(INTRO)}</p>",
            f'<p class="muted">Latest result started: {esc(latest(results))}.</p>' if results
            else "<p>No results filed yet.</p>"]
    if envs:
        boxes = "".join(f'<label><input type="checkbox" name="family" value="{esc(f)}" checked> {esc(f)}</label>'
                        for f in families)
        options = "".join(f'<option value="{esc(e)}">{esc(e)}</option>' for e in envs)
        body.append(f"<fieldset><legend>Units shown in the per-unit tables</legend>{boxes}"
                    f'<label for="env-filter">env</label> <select id="env-filter"><option value="">all</option>'
                    f"{options}</select></fieldset>")
    header = ["Rank", "Submission", "Agent", "Score (mean [95% CI])", "IQM [95% CI]", "iid→ood drop"]
    for suite_name, entries in suites:
        body.append(f'<section id="suite-{suite_name}"><h2>Suite {suite_name}</h2>'
                    f"<p>{esc(SUITES[suite_name].description)}</p>{_plot(entries)}")
        for protocol in PROTOCOLS:
            ranking = [_ranking_row(_num(rank or "–", rank), r, protocol) for rank, r in standings(entries, protocol)]
            anchors = [_ranking_row('<td class="muted">anchor</td>', r, protocol)
                       for r in entries if r["submission"]["privileged"]]
            tail = ('<tbody class="anchors"><tr><th colspan="6">Anchors (privileged, not ranked)</th></tr>'
                    + "".join(anchors) + "</tbody>") if anchors else ""
            body.append(_table(protocol, header, ranking, tail))
        body.append(_table("Per unit", ["Submission", "Family", "Env", "Split", "Protocol", "Score (mean [95% CI])",
                                        "IQM", "Status"], _unit_rows(entries)) + "</section>")
    policy = f"default-src 'none'; style-src {_csp_hash(CSS)}; script-src {_csp_hash(JS)}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>BITR-Bench leaderboard</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + f"\n<script>{JS}</script></body></html>\n")
