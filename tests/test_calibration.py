"""The calibration of a family: the task-given ceiling against the context-free floor, from their
checked result files."""

from __future__ import annotations

import json

import pytest
from test_leaderboard import make_result, no_local_data  # noqa: F401 (the fixture is used)

from bitr_agent.calibration import calibration_table
from bitr_agent.cli import main
from bitr_envs.files import write_json_atomic


def write_runs(runs, algo, levels):
    for seed, level in enumerate(levels):
        write_json_atomic(runs / algo / f"seed{seed}" / "result-tiny.json",
                          make_result(f"{algo} seed {seed}", level, checkpoint=f"{runs}/{algo}/seed{seed}"))


def test_a_family_joins_when_the_ceiling_clears_the_bar_and_the_floor(tmp_path):
    runs = tmp_path / "runs"
    write_runs(runs, "oracle_task", [70.0, 80.0])
    write_runs(runs, "context_free", [10.0, 20.0])
    rows = calibration_table(runs, "tiny").splitlines()[2:]
    # one row per unit: each run's score in seed order, the means, the gap, the verdict
    assert rows[0] == ("| `point-robot-sparse/test/offline-iid` | 70.0 / 80.0 | 75.0 | 10.0 / 20.0 | 15.0 | 60.0 "
                       "| yes |")
    write_runs(runs, "oracle_task", [55.0, 55.0])
    assert calibration_table(runs, "tiny").splitlines()[2].endswith("| no: ceiling below 60 |")
    write_runs(runs, "context_free", [50.0, 50.0])
    write_runs(runs, "oracle_task", [65.0, 65.0])
    assert calibration_table(runs, "tiny").splitlines()[2].endswith("| 15.0 | no: ceiling too near the floor |")
    write_runs(runs, "context_free", [90.0, 90.0])  # told nothing, the learner does better than told the task
    assert calibration_table(runs, "tiny").splitlines()[2].endswith("| -25.0 | no: the floor beats the ceiling |")


def test_a_result_whose_numbers_do_not_follow_is_refused_and_none_is_an_error(tmp_path, capsys):
    runs = tmp_path / "runs"
    with pytest.raises(ValueError, match="no result-tiny.json of both oracle_task and context_free"):
        calibration_table(runs, "tiny")
    write_runs(runs, "oracle_task", [70.0])
    write_runs(runs, "context_free", [10.0])
    forged = runs / "oracle_task" / "seed0" / "result-tiny.json"
    result = json.loads(forged.read_text())
    result["units"][0]["scores"][0][0] = 100.0  # a score its episodes do not give
    forged.write_text(json.dumps(result))
    assert main(["calibration", str(runs), "--suite", "tiny"]) == 2
    assert "result-tiny.json" in capsys.readouterr().err
