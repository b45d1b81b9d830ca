"""The leaderboard's cost against reading its files (run: pytest benchmarks/test_board_speed.py -s).

Both against a plain `json.load` of the same result files, in the same run:

- `render` of the committed board, its files checked before (what the check cache keeps of
  each is read back, the checks that depend on this machine run again, every entry's
  statistics are recomputed), per entry;
- a full check of one result file (`filing.load_checked`: schema, every score, summary and
  aggregate recomputed from the episodes, checksums), per file, for a file of each suite.

Targets: the whole board rendered in under 10 s, one result checked (what `add` adds) in
under 5 s, on the development machine.
"""

import json
import shutil
from pathlib import Path

import pytest
from conftest import best_time, paired_ratio

from bitr_eval.filing import load_checked
from bitr_eval.leaderboard import render

RESULTS = Path(__file__).parent.parent / "leaderboard" / "results"
RUNS = sorted(RESULTS.glob("*/*/run-*.json"))


def json_load(paths) -> None:
    for path in paths:
        with open(path) as f:
            json.load(f)


@pytest.fixture
def board(tmp_path, monkeypatch):
    """A copy of the committed board, rendered once (its files checked and cached)."""
    monkeypatch.setenv("BITR_CACHE_DIR", str(tmp_path / "cache"))
    shutil.copytree(RESULTS, tmp_path / "board" / "results")
    assert render(tmp_path / "board") == []
    return tmp_path / "board"


def test_render_per_entry_against_json_load(benchmark, board):
    entries = len(list((board / "results").glob("*/*/")))
    files = sorted((board / "results").glob("*/*/*.json"))
    ratio = paired_ratio(lambda: render(board), lambda: json_load(files), rounds=3)
    seconds = best_time(lambda: render(board), 1)
    benchmark.extra_info.update({"time_ratio_vs_json_load": round(ratio, 2), "entries": entries,
                                 "seconds_per_entry": round(seconds / entries, 4)})
    print(f"\nrender: {seconds:.2f} s for {entries} entries ({1000 * seconds / entries:.0f} ms per entry), "
          f"{ratio:.1f}x a json.load of their {len(files)} files")
    assert seconds < 10
    benchmark.pedantic(render, args=(board,), rounds=1)


@pytest.mark.parametrize("suite", sorted({path.parts[-3] for path in RUNS}))
def test_full_check_of_one_result_against_json_load(benchmark, suite, monkeypatch, tmp_path):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "no-datasets"))  # no local references to compare
    path = next(p for p in RUNS if p.parts[-3] == suite)
    load_checked(path)  # the task tables of the suite's families, drawn once per process
    ratio = paired_ratio(lambda: load_checked(path), lambda: json_load([path]), rounds=3)
    seconds = best_time(lambda: load_checked(path), 1)
    benchmark.extra_info.update({"time_ratio_vs_json_load": round(ratio, 1), "seconds": round(seconds, 3),
                                 "megabytes": round(path.stat().st_size / 1e6, 2)})
    print(f"\ncheck of {path.relative_to(RESULTS)} ({path.stat().st_size / 1e6:.2f} MB): {seconds:.3f} s, "
          f"{ratio:.0f}x its json.load")
    assert seconds < 5
    benchmark.pedantic(load_checked, args=(path,), rounds=1)
