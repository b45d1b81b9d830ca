"""The board as one web page, index.html: sortable tables, filters by family and env, the
figures inline. It runs only its own script: a Content-Security-Policy pins the style and the
script by hash, and every string taken from a result is escaped (`esc`)."""

from __future__ import annotations

import base64
import hashlib

from bitr_eval.board_cells import (
    INTRO,
    SINGLE,
    ci_text,
    display_name,
    drop_text,
    drop_value,
    first_line,
    header,
    latest,
    ood_text,
    references,
    score,
    sections,
    standings,
    summary_text,
    wall_text,
)
from bitr_eval.figures import esc, suite_figures
from bitr_eval.suites import SUITES

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


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


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
            + _num(drop_text(v), drop_value(v))
            + (_num(ood_text(v), (v["ood_tasks"].get("offline-iid") or {}).get("mean")) if len(header(v["suite"])) == 8
               else "")
            + _num(wall_text(v), v["training_seconds"]) + "</tr>")


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
            where = (family, u["env_id"], u["split"], u["protocol"])
            cells = [f"<td>{name}</td>"] + [f"<td>{esc(x)}</td>" for x in where]
            cells += [_num(summary_text(s, missing="–"), None if s is None else s["mean"], ""),
                      _num("–" if s is None else f"{s['iqm']:.1f}", None if s is None else s["iqm"]),
                      f"<td>{status}</td>"]
            rows.append(f'<tr data-family="{esc(family)}" data-env="{esc(u["env_id"])}">{"".join(cells)}</tr>')
    return rows


def page(views: list[dict]) -> str:
    from bitr_envs.registry import entry

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
    for section in sections(views):
        suite_name, entries = section.suite, section.entries
        columns = ["Rank"] + header(suite_name)
        protocols = SUITES[suite_name].protocols
        body.append(f'<section id="suite-{esc(section.stem)}"><h2>Suite {esc(section.title)}</h2>'
                    f"<p>{esc(SUITES[suite_name].description)}</p>"
                    + "".join(suite_figures(SUITES[suite_name], entries, section.stem).values()))
        for protocol in protocols:
            ranking = [_ranking_row(_num(rank or "–", rank), v, protocol) for rank, v in standings(entries, protocol)]
            others = [_ranking_row(f'<td class="muted">{v["role"]}</td>', v, protocol) for v in references(entries)]
            tail = (f'<tbody class="anchors"><tr><th colspan="{len(columns)}">Anchors and privileged references '
                    "(not ranked)</th></tr>" + "".join(others) + "</tbody>") if others else ""
            body.append(_table(esc(protocol), columns, ranking, tail))
        body.append(_table("Per unit", ["Entry", "Family", "Env", "Split", "Protocol", "Score (mean [95% CI])",
                                        "IQM", "Status"], _unit_rows(entries)) + "</section>")
    policy = f"default-src 'none'; style-src {_csp_hash(CSS)}; script-src {_csp_hash(JS)}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>BITR-Bench leaderboard</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + f"\n<script>{JS}</script></body></html>\n")
