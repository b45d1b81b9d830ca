"""The board's figure of a suite: a standalone SVG, hand-written (a few lines and dots need no
plotting library). Every string taken from a result is escaped (`esc`, which the web page uses too)."""

from __future__ import annotations

import html
import math
import re

from bitr_eval.board_cells import ci_text, display_name, score

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
