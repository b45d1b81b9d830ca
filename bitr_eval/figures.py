"""The board's figures of a suite, standalone SVGs, hand-written (a few lines and dots need no
plotting library): the score per protocol, the context-shift curve, and test against ood tasks.
Every string taken from a result is escaped (`esc`, which the web page uses too)."""

from __future__ import annotations

import html
import math
import re

from bitr_eval.board_cells import ci_text, display_name, summary_text

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def esc(text) -> str:
    """Text from a result file, inert in HTML and SVG: escaped, and without the control
    characters XML forbids (one would make a standalone figure unreadable)."""
    return html.escape(_CONTROL.sub("\ufffd", str(text)))


def _colours(index: int, view: dict) -> tuple[str, str]:
    """(stroke, fill) of an entry's marker in the plot: reference rows are hollow."""
    colour = PALETTE[index % len(PALETTE)]
    return colour, colour if view["role"] == "ranked" else "#fff"


def _scale(values: list[float]) -> tuple[int, int, int]:
    """(low, high, step) of an axis that shows 0 (random), 100 (expert) and every value."""
    values = [0.0, 100.0] + values
    step = 25
    while (max(values) - min(values)) / step > 8:
        step *= 2
    return step * math.floor(min(values) / step), step * math.ceil(max(values) / step), step


class _Plot:
    """A standalone SVG: a score axis on the left (and, for a scatter, below), a legend of
    entries under the plot. `parts` takes the marks in between."""

    WIDTH, HEIGHT, LEFT, TOP, BOTTOM, COLUMNS, ROW = 760, 290, 60, 14, 44, 3, 18

    def __init__(self, entries: list[dict], values: list[float], label: str):
        self.entries, (self.low, self.high, self.step) = entries, _scale(values)
        self.height = self.HEIGHT + 8 + -(-len(entries) // self.COLUMNS) * self.ROW
        self.parts = [f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.WIDTH} '
                      f'{self.height}" role="img" aria-label="{esc(label)}" font-family="sans-serif" font-size="12" '
                      f'fill="#1b1f24">', f'<rect width="{self.WIDTH}" height="{self.height}" fill="#fff"/>']

    def y(self, value: float) -> str:
        span = self.HEIGHT - self.TOP - self.BOTTOM
        return f"{self.TOP + (self.high - value) / (self.high - self.low) * span:.1f}"

    def x(self, value: float) -> str:
        """A score on the horizontal axis (scatter plots)."""
        return f"{self.LEFT + (value - self.low) / (self.high - self.low) * (self.WIDTH - self.LEFT - 10):.1f}"

    def y_ticks(self) -> None:
        for tick in range(self.low, self.high + 1, self.step):
            dash = ' stroke-dasharray="4 3"' if tick in (0, 100) else ""  # random and expert
            self.parts.append(f'<line x1="{self.LEFT}" x2="{self.WIDTH}" y1="{self.y(tick)}" y2="{self.y(tick)}" '
                              f'stroke="#d0d7de"{dash}/><text x="{self.LEFT - 6}" y="{self.y(tick)}" '
                              f'text-anchor="end" dominant-baseline="middle">{tick}</text>')

    def y_title(self, title: str) -> None:
        self.parts.append(f'<text transform="translate(16 {(self.HEIGHT - self.BOTTOM) / 2:.0f}) rotate(-90)" '
                          f'text-anchor="middle">{esc(title)}</text>')

    def x_axis(self, title: str) -> None:
        base = self.y(self.low)
        for tick in range(self.low, self.high + 1, self.step):
            self.parts.append(f'<text x="{self.x(tick)}" y="{float(base) + 16:.1f}" text-anchor="middle">{tick}</text>')
        self.parts.append(f'<text x="{(self.LEFT + self.WIDTH) / 2:.0f}" y="{self.HEIGHT - 6}" '
                          f'text-anchor="middle">{esc(title)}</text>')

    def band_label(self, b: int, label: str, band: float) -> None:
        """The label under the b-th band ("offline-ood:detour" in two lines, the behaviour above
        its protocol: nine fit side by side)."""
        lines, x = label.split(":")[::-1], f"{self.LEFT + band * (b + .5):.1f}"
        self.parts.append(f'<text x="{x}" y="{self.HEIGHT - 22}" text-anchor="middle">'
                          + "".join(f'<tspan x="{x}" dy="{0 if i == 0 else 14}">{esc(line)}</tspan>'
                                    for i, line in enumerate(lines)) + "</text>")

    def svg(self) -> str:
        column_width = (self.WIDTH - self.LEFT) / self.COLUMNS
        for i, v in enumerate(self.entries):
            stroke, fill = _colours(i, v)
            x, y_row = self.LEFT + column_width * (i % self.COLUMNS), self.HEIGHT + 8 + self.ROW * (i // self.COLUMNS)
            self.parts.append(f'<circle cx="{x + 6:.1f}" cy="{y_row + 6}" r="4.5" stroke="{stroke}" stroke-width="2" '
                              f'fill="{fill}"/><text x="{x + 16:.1f}" y="{y_row + 6}" dominant-baseline="middle">'
                              f'{esc(display_name(v))}</text>')
        return "".join(self.parts) + "</svg>"


def _intervals(entries: list[dict], key: str, protocols: list[str]) -> list[float]:
    return [x for v in entries for p in protocols if (v[key].get(p) or {}).get("mean_ci95")
            for x in v[key][p]["mean_ci95"]]


def figure(entries: list[dict], protocols: list[str]) -> str:
    """Normalised score per protocol: each entry's mean with its 95% CI bar, legend below."""
    plot = _Plot(entries, _intervals(entries, "protocols", protocols), "normalised score per protocol")
    plot.y_ticks()
    band = (plot.WIDTH - plot.LEFT) / len(protocols)
    for b, protocol in enumerate(protocols):
        plot.band_label(b, protocol, band)
        for i, v in enumerate(entries):
            summary = v["protocols"].get(protocol)
            if summary is None:
                continue
            (stroke, fill), (lo, hi) = _colours(i, v), summary["mean_ci95"]
            x = f"{plot.LEFT + band * (b + (i + 1) / (len(entries) + 1)):.1f}"
            plot.parts.append(f'<g stroke="{stroke}" stroke-width="2"><title>{esc(display_name(v))}, '
                              f'{esc(protocol)}: {ci_text(v, protocol)}</title><line x1="{x}" x2="{x}" '
                              f'y1="{plot.y(lo)}" y2="{plot.y(hi)}"/><circle cx="{x}" cy="{plot.y(summary["mean"])}" '
                              f'r="4.5" fill="{fill}"/></g>')
    plot.y_title("normalised score")
    return plot.svg()


SHIFT_ORDER = ("offline-iid", "offline-unseen", "offline-other-task")  # nearest the training data first


def shift_protocols(protocols: list[str]) -> list[str]:
    """The offline protocols of a current suite from the training pool's context to the context of
    policies pursuing another task (each protocol's behaviours in definition order); [] for a suite
    without the other-task context."""
    offline = [p for p in protocols if p.partition(":")[0] in SHIFT_ORDER]
    if not any(p.startswith("offline-other-task") for p in offline):
        return []
    return sorted(offline, key=lambda p: SHIFT_ORDER.index(p.partition(":")[0]))


def shift_curve(entries: list[dict], protocols: list[str]) -> str:
    """The context-shift curve: each entry's mean test-task score (a line through its dots) against
    the context's behaviour, from the training pool's to those pursuing another task."""
    plot = _Plot(entries, [v["protocols"][p]["mean"] for v in entries for p in protocols
                           if v["protocols"].get(p)], "normalised score against the context's behaviour")
    plot.y_ticks()
    plot.y_title("normalised score, test tasks")
    band = (plot.WIDTH - plot.LEFT) / len(protocols)
    for b, protocol in enumerate(protocols):
        plot.band_label(b, protocol, band)
    for i, v in enumerate(entries):
        stroke, fill = _colours(i, v)
        points = [(f"{plot.LEFT + band * (b + .5):.1f}", plot.y(v["protocols"][p]["mean"]), p)
                  for b, p in enumerate(protocols) if v["protocols"].get(p)]
        dash = "" if v["role"] == "ranked" else ' stroke-dasharray="3 3"'
        plot.parts.append(f'<g stroke="{stroke}" stroke-width="2"><polyline fill="none"{dash} points="'
                          + " ".join(f"{x},{y}" for x, y, _ in points) + '"/>'
                          + "".join(f'<circle cx="{x}" cy="{y}" r="3.5" fill="{fill}"><title>{esc(display_name(v))}, '
                                    f'{esc(p)}: {ci_text(v, p)}</title></circle>' for x, y, p in points) + "</g>")
    return plot.svg()


def task_gap(entries: list[dict]) -> str:
    """Test tasks against ood tasks, offline-iid context: each entry a dot with its two 95% CIs;
    below the diagonal, the entry loses score on tasks outside the training range."""
    shown = [v for v in entries if v["protocols"].get("offline-iid") and v["ood_tasks"].get("offline-iid")]
    plot = _Plot(entries, _intervals(shown, "protocols", ["offline-iid"]) + _intervals(shown, "ood_tasks",
                                                                                         ["offline-iid"]),
                 "test-task against ood-task score")
    plot.y_ticks()
    plot.y_title("ood tasks, offline-iid")
    plot.x_axis("test tasks, offline-iid")
    plot.parts.append(f'<line x1="{plot.x(plot.low)}" y1="{plot.y(plot.low)}" x2="{plot.x(plot.high)}" '
                      f'y2="{plot.y(plot.high)}" stroke="#8c959f" stroke-dasharray="6 4"/>')
    for i, v in enumerate(entries):
        if v not in shown:
            continue
        (stroke, fill), test, ood = _colours(i, v), v["protocols"]["offline-iid"], v["ood_tasks"]["offline-iid"]
        x, y = plot.x(test["mean"]), plot.y(ood["mean"])
        plot.parts.append(f'<g stroke="{stroke}" stroke-width="2"><title>{esc(display_name(v))}: test tasks '
                          f'{summary_text(test)}, ood tasks {summary_text(ood)}</title>'
                          f'<line x1="{plot.x(test["mean_ci95"][0])}" x2="{plot.x(test["mean_ci95"][1])}" y1="{y}" '
                          f'y2="{y}"/><line x1="{x}" x2="{x}" y1="{plot.y(ood["mean_ci95"][0])}" '
                          f'y2="{plot.y(ood["mean_ci95"][1])}"/><circle cx="{x}" cy="{y}" r="4.5" fill="{fill}"/></g>')
    return plot.svg()


def figure_titles(suite, stem: str | None = None) -> dict[str, str]:
    """The file stem and the title of each figure of a suite's board section (`stem`, default the
    suite's name): `<stem>` (score per protocol) and, on the current suites, `<stem>-shift` (the
    context-shift curve) and `<stem>-tasks` (test against ood tasks, where the suite has ood
    tasks)."""
    stem = stem or suite.name
    titles = {stem: "normalised score per protocol"}
    if shift_protocols(suite.protocols):
        titles[f"{stem}-shift"] = "the context-shift curve: score against the context's behaviour"
    if any(u.split == "ood" and u.protocol == "offline-iid" for u in suite.units):
        titles[f"{stem}-tasks"] = "test-task against ood-task score"
    return titles


def suite_figures(suite, entries: list[dict], stem: str | None = None) -> dict[str, str]:
    """Every figure of a suite's board section (SVG text), by file stem (`figure_titles`)."""
    stem = stem or suite.name
    titles = figure_titles(suite, stem)
    figures = {stem: figure(entries, suite.protocols)}
    if f"{stem}-shift" in titles:
        figures[f"{stem}-shift"] = shift_curve(entries, shift_protocols(suite.protocols))
    if f"{stem}-tasks" in titles:
        figures[f"{stem}-tasks"] = task_gap(entries)
    return figures
