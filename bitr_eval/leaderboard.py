"""The leaderboard: a folder of board entries, each one or more checked result files (training
runs), and the pages rendered from it.

    bitr leaderboard add RUN1.json RUN2.json RUN3.json --name "FOCAL (lite)"
    bitr leaderboard render        write README.md, index.html and plots/ from the filed entries

The jobs, each in its own module, each importing only those above it in this list:

- `bitr_eval.checks`: whether a result file can be compared with the others and proves its numbers;
- `bitr_eval.filing`: filing checked result files as entries, and reading the entries back;
- `bitr_eval.entry_stats`: what the pages show of an entry (its statistics);
- `bitr_eval.board_cells`: the ranking and the text of each cell, which every page shows;
- `bitr_eval.figures`, `bitr_eval.board_markdown`, `bitr_eval.board_html`: the SVG figures,
  README.md and the results page's tables, index.html;
- this module: `render`, which writes them all.

Whether a row is ranked is not taken from the file: the built-in anchors (`random`, `oracle`)
and anything privileged (the `oracle` spec, or a submission that says so) are reference rows
(`bitr_eval.agents.role`). Every string taken from a result is escaped on output, and
index.html runs only its own script.
"""

from __future__ import annotations

import os
from pathlib import Path

from bitr_eval.board_cells import sections
from bitr_eval.board_html import page
from bitr_eval.board_markdown import ResultsPageError, markdown, table_block, with_results_tables
from bitr_eval.entry_stats import entry_view
from bitr_eval.figures import suite_figures
from bitr_eval.filing import filed, progress
from bitr_eval.suites import SUITES


def repository_results_page(directory: str | Path) -> Path | None:
    """The results page whose tables a plain `render` of `directory` refreshes: docs/results.md of
    the repository whose `leaderboard/` folder it is; None for any other board (a user's own, in
    runs/board say), whose render then leaves the repository's pages alone."""
    folder = Path(directory).resolve()
    page = folder.parent / "docs" / "results.md"
    return page if folder.name == "leaderboard" and page.is_file() else None


def render(directory: str | Path = "leaderboard", results_page: str | Path | None = None) -> list[str]:
    """Write README.md, index.html and each board section's figures (plots/<suite>[-<key>]*.svg) from the filed
    entries, and refresh the tables block of `results_page` if given (checked before anything is
    written); return the warnings about skipped files."""
    page_text = None
    if results_page is not None:
        if not Path(results_page).is_file():
            raise ResultsPageError(f"no results page at {results_page}: give the Markdown page whose tables to refresh")
        page_text = Path(results_page).read_text(encoding="utf-8")
        table_block(page_text)
    entries, warnings = filed(directory)
    views = []
    with progress(len(entries), "entry statistics", "entry") as bar:
        for e in entries:
            views.append({**entry_view(e["name"], e["runs"]), "verification": e["verification"]})
            bar.update()
    Path(directory, "README.md").write_text(markdown(views), encoding="utf-8")
    Path(directory, "index.html").write_text(page(views), encoding="utf-8")
    plots = Path(directory, "plots")
    plots.mkdir(exist_ok=True)
    figures = {stem: svg for section in sections(views)
               for stem, svg in suite_figures(SUITES[section.suite], section.entries, section.stem).items()}
    for stale in set(plots.glob("*.svg")) - {plots / f"{stem}.svg" for stem in figures}:
        stale.unlink()
    for stem, svg in figures.items():
        (plots / f"{stem}.svg").write_text(svg + "\n", encoding="utf-8")
    if page_text is not None:
        folder = Path(os.path.relpath(plots, Path(results_page).parent)).as_posix()
        Path(results_page).write_text(with_results_tables(page_text, views, folder), encoding="utf-8")
    return warnings
