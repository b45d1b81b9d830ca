"""The evaluator: protocols, anchors, statistics, isolation from bad agents, resume, executors."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import build_minari_root

from bitr_envs import datasets
from bitr_eval import ResultError, evaluate, load_result, suite, validate
from bitr_eval.agents import load_factory
from bitr_eval.cli import main as bitr_main
from bitr_eval.runner import planned_episodes
from bitr_eval.worker import start_seed

TESTS = Path(__file__).parent
FAULTY = f"{TESTS / 'faulty_agents.py'}:make"
TINY = suite("tiny")
# The tiny suite with a short per-episode limit, so that the hang test is quick.
TINY_FAST_LIMIT = dataclasses.replace(TINY, episode_time_limit_s=5.0)
# The tiny suite with a second family (dense Point-Robot), for running a suite in pieces.
TWO_FAMILIES = dataclasses.replace(
    TINY, units=TINY.units + tuple(dataclasses.replace(u, env_id="bitr/PointRobot-v0") for u in TINY.units))


@pytest.fixture(scope="module")
def minari_root(tmp_path_factory):
    yield from build_minari_root(tmp_path_factory, TWO_FAMILIES.datasets)


@pytest.fixture(autouse=True)
def root(minari_root, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_root))
    return minari_root


def run(agent, out, chosen=TINY, **submission):
    return evaluate(chosen, {"name": agent, "agent": agent, **submission}, out, jobs=3)


def without_timing(result):
    units = [{k: v for k, v in u.items() if k not in ("wall_seconds", "play_order")} for u in result["units"]]
    return units, result["aggregates"]


def test_anchor_agents_give_valid_results_near_0_and_100(tmp_path):
    random_result = run("random", tmp_path / "random.json")
    oracle_result = run("oracle", tmp_path / "oracle.json")
    for result in (random_result, oracle_result):
        validate(result)
        assert load_result(tmp_path / f"{result['submission']['name']}.json") == result
        assert [u["status"] for u in result["units"]] == ["ok"] * 3
        assert [u["unit_id"] for u in result["units"]] == result["suite"]["units"]
    for protocol, summary in random_result["aggregates"]["protocols"].items():
        assert abs(summary["mean"]) < 10, protocol
    for protocol, summary in oracle_result["aggregates"]["protocols"].items():
        assert 90 < summary["mean"] < 115, protocol
        low, high = summary["mean_ci95"]
        assert low <= summary["mean"] <= high
    assert oracle_result["submission"]["privileged"] and not random_result["submission"]["privileged"]
    online = oracle_result["units"][2]
    assert online["protocol"] == "online" and online["first_episode"] is not None
    phases = [e["phase"] for e in online["episodes"] if e["task"] == 0]
    assert phases == ["explore"] * TINY.units[2].explore_episodes + ["score"] * TINY.units[2].episodes
    assert all(d["id"].startswith("bitr/point-robot-sparse/test-") for d in online["datasets"])


def test_context_never_reveals_the_behaviour_policy():
    from bitr_eval.suites import unit_context

    data = datasets.load(TINY.units[0].context_dataset)
    context = unit_context(TINY.units[0], data, 2, np.random.default_rng(0))
    assert set(context) == {"observations", "actions", "rewards", "next_observations", "terminals", "timeouts"}
    assert len(context["rewards"]) == 5 * 20 and context["timeouts"].sum() == 5  # five whole episodes


@pytest.mark.parametrize(
    "fault, reason",
    [
        ("raise", "agent.act raised RuntimeError: policy network exploded"),
        ("nan", "non-finite action"),
        ("wrong_shape", "returned shape (3,), the action space is (2,)"),
        ("out_of_bounds", "outside the action bounds"),
        ("hang", "agent hung: nothing finished within 5 s"),
        ("crash", "agent process died (exit code 3)"),
    ],
)
def test_a_faulty_agent_fails_its_units_and_the_run_goes_on(tmp_path, fault, reason):
    result = run(FAULTY, tmp_path / "faulty.json", chosen=TINY_FAST_LIMIT, agent_args={"fault": fault})
    validate(result)
    offline = [u for u in result["units"] if u["protocol"] != "online"]
    online = [u for u in result["units"] if u["protocol"] == "online"]
    for unit in offline:
        assert unit["status"] == "failed" and reason in unit["failure"], unit["failure"]
        assert unit["summary"] is None
    assert online[0]["status"] == "ok" and abs(online[0]["summary"]["mean"]) < 10
    assert result["aggregates"]["protocols"]["offline-iid"] is None
    assert result["aggregates"]["protocols"]["online"] is not None


def test_protocols_score_the_same_start_states(tmp_path):
    # The oracle ignores its context: with common start states its three protocols coincide.
    result = run("oracle", tmp_path / "oracle.json")
    iid, ood, online = (u["episodes"] for u in result["units"])
    score = [[(e["task"], e["seed"], e["return"]) for e in episodes if e["phase"] == "score"]
             for episodes in (iid, ood, online)]
    assert score[0] == score[1] == score[2]
    assert result["aggregates"]["ood_drop"]["bitr/PointRobotSparse-v0/test"] == 0.0
    # Point-Robot always starts at the origin, so check the seeds themselves for the other families
    iid, ood, online = suite("lite").units[3:6]  # Cheetah-Vel
    assert iid.protocol == "offline-iid" and ood.protocol == "offline-ood" and online.protocol == "online"
    first = start_seed(iid, 1, 4, "score", 0)
    assert first == start_seed(ood, 1, 4, "score", 0) == start_seed(online, 1, 4, "score", 0)
    others = {start_seed(iid, 1, 4, "score", 1), start_seed(iid, 2, 4, "score", 0), start_seed(iid, 1, 5, "score", 0),
              start_seed(online, 1, 4, "explore", 0), start_seed(suite("lite").units[0], 1, 4, "score", 0)}
    assert first not in others and len(others) == 5
    assert start_seed(iid, 1, 4, "score", 0, salt=12345) not in others | {first}  # a sealed key's start states


def test_a_rerun_retries_failed_units_and_keeps_finished_ones(tmp_path):
    out = tmp_path / "resume.json"
    full = run("oracle", out)
    truncated = json.loads(out.read_text())
    truncated["units"] = truncated["units"][:1]  # as if killed after the first unit
    out.write_text(json.dumps(truncated))
    episodes = []
    remaining = planned_episodes(TINY, out=out)  # what the progress bar of the resumed run counts
    resumed = evaluate(TINY, {"name": "oracle", "agent": "oracle"}, out, jobs=3, progress=episodes.append)
    assert sum(episodes) == remaining == planned_episodes(TINY) - len(full["units"][0]["episodes"])
    assert without_timing(resumed) == without_timing(full)


def test_a_suite_runs_in_pieces_one_family_at_a_time(tmp_path):
    whole = evaluate(TWO_FAMILIES, {"name": "oracle", "agent": "oracle"}, tmp_path / "whole.json", jobs=3)
    out = tmp_path / "pieces.json"
    first = evaluate(TWO_FAMILIES, {"name": "oracle", "agent": "oracle"}, out, jobs=3, env_ids=["bitr/PointRobot-v0"])
    assert {u["env_id"] for u in first["units"]} == {"bitr/PointRobot-v0"} and len(first["units"]) == 3
    episodes = []
    rest = evaluate(TWO_FAMILIES, {"name": "oracle", "agent": "oracle"}, out, jobs=3, progress=episodes.append)
    assert sum(episodes) == planned_episodes(TWO_FAMILIES, ["bitr/PointRobotSparse-v0"])
    assert without_timing(rest) == without_timing(whole)
    refused = "bitr/CheetahVel-v0 not in the tiny suite, whose envs are bitr/PointRobotSparse-v0"
    with pytest.raises(ValueError, match=refused):
        evaluate(TINY, {"name": "oracle", "agent": "oracle"}, tmp_path / "x.json", env_ids=["bitr/CheetahVel-v0"])


def test_a_killed_evaluation_resumes_to_the_same_result(tmp_path):
    uninterrupted = without_timing(run("random", tmp_path / "whole.json"))
    out = tmp_path / "killed.json"
    command = [sys.executable, "-m", "bitr_eval.cli", "evaluate", "--agent", "random", "--suite", "tiny",
               "--out", str(out), "--jobs", "1", "--name", "random"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (out.exists() and json.loads(out.read_text())["units"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the evaluator and its worker, mid-run
    process.wait()
    partial = load_result(out)
    assert 1 <= len(partial["units"]) < 3
    assert bitr_main(command[3:]) == 0
    assert without_timing(load_result(out)) == uninterrupted


def test_ray_executor_gives_the_same_results(tmp_path):
    ray = pytest.importorskip("ray")
    local = run("random", tmp_path / "local.json")
    try:
        on_ray = evaluate(TINY, {"name": "random", "agent": "random"}, tmp_path / "ray.json", jobs=2, executor="ray")
    finally:
        ray.shutdown()  # the evaluator started a local instance; later tests start their own
    assert without_timing(on_ray) == without_timing(local)


def test_result_for_another_submission_is_not_overwritten(tmp_path):
    out = tmp_path / "taken.json"
    run("random", out)
    with pytest.raises(ValueError, match="another submission or suite"):
        run("oracle", out)


def test_bad_agent_specs_are_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="name a factory as 'package.module:make'"):
        load_factory("my_agent")
    with pytest.raises(ValueError, match="cannot import 'no_such_package.agent'"):
        load_factory("no_such_package.agent:make")
    with pytest.raises(ValueError, match="no file"):
        load_factory("missing/agent.py:make")
    with pytest.raises(ValueError, match="has no 'build'"):
        load_factory(f"{TESTS / 'faulty_agents.py'}:build")
    assert bitr_main(["evaluate", "--agent", "random", "--suite", "huge", "--out", str(tmp_path / "x.json")]) == 2
    assert bitr_main(["evaluate", "--agent", "random", "--suite", "tiny", "--agent-args", "[1]",
                      "--out", str(tmp_path / "x.json")]) == 2
    capsys.readouterr()
    assert bitr_main(["evaluate", "--agent", "no_such_package.agent:make", "--suite", "tiny",
                      "--out", str(tmp_path / "x.json")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("bitr: error: Agent 'no_such_package.agent:make': cannot import") and "episode" not in error


def test_missing_datasets_are_named_with_the_command_that_builds_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="bitr datasets build bitr/point-robot-sparse/test-iid-tiny-v0"):
        run("random", tmp_path / "r.json")


def test_damaged_result_files_are_refused(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ResultError, match="not a readable JSON"):
        load_result(path)
    path.write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(ResultError, match="invalid result at \\(top level\\): 'submission' is a required property"):
        load_result(path)


def test_cli_prints_the_aggregate_table(tmp_path, capsys):
    assert bitr_main(["evaluate", "--agent", "oracle", "--suite", "tiny", "--out", str(tmp_path / "o.json")]) == 0
    out = capsys.readouterr().out
    assert "point-robot-sparse/test/offline-ood" in out and "drop offline-iid -> offline-ood" in out


def test_each_task_is_played_by_a_fresh_agent_in_a_secret_order(tmp_path):
    """An agent that counts its resets learns nothing about the task: every task of a unit gets
    a fresh process that sees only that task's seeds, and the tasks come in an order nobody can
    know in advance (recorded on the unit, so a re-play follows it)."""
    from bitr_envs.registry import entry
    from bitr_eval.worker import check_play_order

    two_seeds = dataclasses.replace(TINY, seeds=(0, 1), units=TINY.units[:1])
    n_tasks = len(entry(two_seeds.units[0].env_id).env_class.split_tasks("test"))
    orders = []
    for k in range(2):
        out = tmp_path / f"counter{k}.json"
        result = run(f"{TESTS / 'faulty_agents.py'}:counter", out, two_seeds)
        [unit] = result["units"]
        assert unit["status"] == "ok"
        orders.append(check_play_order(unit["play_order"], n_tasks, (0, 1)))
        log = (tmp_path / f"{out.name}.logs" / (unit["unit_id"].replace("/", "__") + ".log")).read_text()
        counts = [int(line.rpartition(" reset ")[2]) for line in log.splitlines() if line.startswith("pid ")]
        assert counts == [1, 2] * n_tasks  # each process counted its own task's two seeds, no more
    assert orders[0] != orders[1]  # 10! x 2^10 orders: the same one twice is a bug
    with pytest.raises(ValueError, match="every \\(task, seed\\)"):
        check_play_order(orders[0][:-1], n_tasks, (0, 1))
    with pytest.raises(ValueError, match="each task's seeds together"):
        check_play_order([orders[0][0], orders[0][2], orders[0][1], *orders[0][3:]], n_tasks, (0, 1))


def test_a_family_whose_expert_fails_some_tasks_is_scored_on_the_split_s_scale():
    """Per task, 0 is the task's random return and 100 its expert's; where the expert fails some
    tasks outright (Hopper/Walker-Param) one scale is pooled over the split, so a task whose own
    scale is near zero or negative neither explodes the score nor flips its sign."""
    from bitr_eval.scoring import score_episodes
    from bitr_eval.suites import Unit

    references = {"random": [0.0, 0.0, 10.0], "expert": [100.0, 0.5, 110.0]}  # the expert fails task 1
    returns = [50.0, 0.0, 60.0]

    def pooled(value):  # 0 = the mean random return 10/3, 100 = the mean expert's 210.5/3
        return 100 * (value - 10 / 3) / (210.5 / 3 - 10 / 3)

    for env_id, expected in (("bitr/CheetahVel-v0", [50.0, 0.0, 50.0]),
                             ("bitr/WalkerParamSparse-v0", [pooled(r) for r in returns])):
        unit = Unit(env_id, "test", "offline-iid", "lite", 1, 1, 0)
        episodes = [{"task": t, "seed": 0, "episode": 0, "phase": "score", "return": r, "length": 200,
                     "success": None} for t, r in enumerate(returns)]
        scores = score_episodes(unit, (0,), episodes, references)["scores"]
        assert np.array(scores)[:, 0] == pytest.approx(expected)
    episodes[1]["return"] = -1.0  # a per-task scale of 0.5 would make this -200
    assert score_episodes(unit, (0,), episodes, references)["scores"][1][0] == pytest.approx(pooled(-1.0))
