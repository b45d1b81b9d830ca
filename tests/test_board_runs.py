"""Board entries of several training runs, their statistics and the typed suites."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_leaderboard import add, make_result, no_local_data, table  # noqa: F401 (the fixture is used)

from bitr_envs.registry import ENVS
from bitr_eval import stats
from bitr_eval.check_cache import board_record
from bitr_eval.cli import build_parser, main
from bitr_eval.entry_stats import entry_view
from bitr_eval.filing import filed
from bitr_eval.results import read_training
from bitr_eval.suites import PROTOCOLS, SUITES, V0_PROTOCOLS, Protocol, context_rows, suite

# Statistics -----------------------------------------------------------------------------------

def test_bootstrap_uses_10k_resamples_and_is_deterministic():
    assert stats.RESAMPLES == 10_000
    runs = np.random.default_rng(1).normal(50, 10, size=(3, 12))
    first, second = stats.summarize_runs(runs), stats.summarize_runs(runs)
    assert first == second
    assert first["mean_ci95"][0] < first["mean"] < first["mean_ci95"][1]
    assert first["n"] == 36 and first["mean"] == pytest.approx(runs.mean())
    assert stats.summarize_runs(runs, seed=1) != first  # the seed is what fixes the draw


def test_the_interval_covers_the_spread_between_runs_not_between_tasks():
    tasks = np.linspace(0, 100, 10)  # very different tasks: not what the runs interval is about
    rng = np.random.default_rng(0)
    calm = tasks + rng.normal(0, 1, size=(5, 10))
    wild = tasks + rng.normal(0, 10, size=(5, 10))
    width = {name: np.diff(stats.summarize_runs(runs)["mean_ci95"])[0]
             for name, runs in (("calm", calm), ("wild", wild))}
    assert width["calm"] < 1.5 < 3 < width["wild"]  # stratified: the task spread adds nothing
    identical = np.tile(tasks, (4, 1))
    assert stats.summarize_runs(identical)["mean_ci95"] == [pytest.approx(50.0)] * 2
    with pytest.raises(ValueError, match="at least 2 runs"):
        stats.summarize_runs(tasks[None, :])


def scipy_interval(scores: np.ndarray, statistic, seed: int) -> list[float]:
    """The interval as bitr-bench computed it before its bootstrap was vectorised (the result
    files on the board were written with it): scipy.stats.bootstrap, one sample per task."""
    from scipy import stats as scipy_stats

    if scores.shape[1] < 2:
        scores = scores.T

    def pooled(*tasks, axis):
        return statistic(np.concatenate(tasks, axis=axis), axis=axis)

    result = scipy_stats.bootstrap(tuple(scores), pooled, vectorized=True, n_resamples=stats.RESAMPLES,
                                   confidence_level=stats.CONFIDENCE, method="percentile",
                                   random_state=np.random.default_rng(seed))
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def test_the_vectorised_bootstrap_gives_scipys_intervals():
    """A synthetic entry (3 runs of 30 tasks; a unit of 10 tasks x 3 seeds; one seed per task):
    every interval end is the one scipy.stats.bootstrap gives with the same seed, far inside
    the bootstrap's own noise (the spread of the ends over seeds, measured here too; on the
    committed board it is stated in docs/evaluation.md)."""
    rng = np.random.default_rng(7)
    entry = rng.normal(50, 15, size=(3, 30)) + np.linspace(0, 40, 30)
    cases = [(entry.T, stats.summarize_runs(entry)), (entry[:, :10].T, stats.summarize_runs(entry[:, :10]))]
    for scores in (rng.normal(40, 10, size=(10, 3)), rng.normal(40, 10, size=(12, 1))):
        cases.append((scores, stats.summarize(scores)))
    for scores, summary in cases:
        for key, statistic in (("mean", np.mean), ("iqm", stats.iqm)):
            ends = np.array([scipy_interval(scores, statistic, seed) for seed in range(5)])
            noise = ends.std(axis=0, ddof=1)
            assert np.all(noise > 0.01)  # the ends do move with the seed...
            assert np.abs(np.array(summary[f"{key}_ci95"]) - ends[0]).max() < 1e-9  # ...these do not
            assert np.all(np.abs(np.array(summary[f"{key}_ci95"]) - ends[0]) < noise / 1000)
            assert summary[key] == pytest.approx(float(statistic(scores.ravel())), rel=1e-12)


# Entries of several runs ----------------------------------------------------------------------

def runs(name, scores, **kwargs):
    return [make_result(name, score, checkpoint=f"runs/{name}/seed{k}", **kwargs) for k, score in enumerate(scores)]


def test_several_runs_are_filed_and_rendered_as_one_entry(tmp_path, capsys):
    training = {"wall_seconds": 1800.0, "algo": "focal", "seed": 0, "profile": "lite", "dataset": "x"}
    three = runs("FOCAL s", [40.0, 50.0, 60.0], training=training)
    assert add(tmp_path, three, "--name", "FOCAL (tiny)") == 0
    assert "filed as" in (out := capsys.readouterr().out) and "(3 runs)" in out
    folder = tmp_path / "board" / "results" / "tiny" / "focal-tiny"
    assert sorted(p.name for p in folder.iterdir()) == ["entry.json", "run-1.json", "run-2.json", "run-3.json"]
    assert json.loads((folder / "entry.json").read_text())["name"] == "FOCAL (tiny)"
    assert add(tmp_path, make_result("lonely", 45.0, isolation="process")) == 0
    assert main(["leaderboard", "render", "--dir", str(tmp_path / "board")]) == 0
    readme = (tmp_path / "board" / "README.md").read_text()
    iid = {row[1]: row for row in table(readme, "### offline-iid")}
    assert iid["FOCAL (tiny)"][3] == "3" and iid["lonely"][3] == "1 (single run); weaker sandbox"
    assert iid["FOCAL (tiny)"][4].startswith("50.0 [")
    assert iid["FOCAL (tiny)"][7] == "30 min" and iid["lonely"][7] == "–"
    # a run whose record sums a family the suite does not score has no time of its own to show
    beyond = {**training, "dataset": ["bitr/point-robot-sparse/train-iid-tiny-v0",
                                      "bitr/cheetah-vel/train-iid-tiny-v0"]}
    mixed = runs("CSRO s", [40.0, 50.0], training=training) + [make_result("CSRO s", 60.0, checkpoint="c2",
                                                                           training=beyond)]
    assert add(tmp_path, mixed, "--name", "CSRO (tiny)") == 0
    assert main(["leaderboard", "render", "--dir", str(tmp_path / "board")]) == 0
    iid = {row[1]: row for row in table((tmp_path / "board" / "README.md").read_text(), "### offline-iid")}
    assert iid["CSRO (tiny)"][7] == "30 min (2 of 3 runs)"
    assert iid["FOCAL (tiny)"][6] == "0.0 [0.0, 0.0]"  # the same episodes under both contexts
    entries, warnings = filed(tmp_path / "board")
    assert warnings == [] and sorted(len(e["runs"]) for e in entries) == [1, 3, 3]


def test_the_results_page_shows_each_run_per_family(tmp_path):
    """Per family, beside the entry's mean over runs, each run's own mean in the order they were
    filed, so a reader sees whether one run carries an entry; a unit that failed says so."""
    from bitr_eval.board_markdown import RESULTS_BEGIN, RESULTS_END

    three = runs("FOCAL s", [40.0, 70.0, 61.0], suite_name="lite-core")
    assert add(tmp_path, three, "--name", "FOCAL (lite)") == 0
    assert add(tmp_path, make_result("lonely", 45.0, suite_name="lite-core", failed="cheetah-vel/test/online")) == 0
    page = tmp_path / "results.md"
    page.write_text(f"{RESULTS_BEGIN}\n{RESULTS_END}\n")
    assert main(["leaderboard", "render", "--dir", str(tmp_path / "board"), "--results-page", str(page)]) == 0
    text = page.read_text()
    for family, lonely in (("point-robot-sparse", ["45.0"] * 3), ("cheetah-vel", ["45.0", "45.0", "failed"])):
        heading = f"`{family}`, mean normalised score"
        columns = "| Entry | `test/offline-iid` | `test/offline-ood` | `test/online` |"
        assert f"{heading} (each run's, in filing order):\n\n{columns}" in text
        rows = {row[0]: row[1:] for row in table(text, heading, "| Entry")}
        assert rows == {"FOCAL (lite)": ["57.0 (40 / 70 / 61)"] * 3, "lonely": lonely}


def test_entry_statistics_resample_runs(tmp_path):
    close, far = runs("close", [49.0, 50.0, 51.0]), runs("far", [20.0, 50.0, 80.0])
    width = {}
    for name, entry in (("close", close), ("far", far)):
        view = entry_view(name, [board_record(run) for run in entry])
        low, high = view["protocols"]["offline-iid"]["mean_ci95"]
        width[name] = high - low
        assert view["protocols"]["offline-iid"]["mean"] == pytest.approx(50.0)
        assert [u["summary"]["mean"] for u in view["units"]] == [pytest.approx(50.0)] * 3
    assert width["close"] < 3 < 10 < width["far"]
    single = entry_view("one", [board_record(run) for run in runs("one", [50.0])])
    assert single["protocols"]["offline-iid"] == make_result("one", 50.0)["aggregates"]["protocols"]["offline-iid"]
    assert single["drop"] == {"value": 0.0, "ci95": None}


@pytest.mark.parametrize("second, reason", [
    (dict(agent="other_pkg:make"), "run 2: submission/agent differs from run 1's"),
    (dict(checkpoint="runs/x/seed0"), "two runs have the same checkpoint"),
    (dict(suite_name="quick", checkpoint="runs/x/seed1"), "run 2: another suite"),
])
def test_runs_of_different_agents_are_not_one_entry(tmp_path, capsys, second, reason):
    first = make_result("x", 50.0, checkpoint="runs/x/seed0")
    assert add(tmp_path, [first, make_result("x", 50.0, **second)]) == 2
    assert reason in capsys.readouterr().err


def test_differently_named_runs_need_a_name(tmp_path, capsys):
    assert add(tmp_path, [make_result("a", 50.0, checkpoint="1"), make_result("b", 51.0, checkpoint="2")]) == 2
    assert "name the entry with --name" in capsys.readouterr().err


def test_training_block_is_read_from_the_checkpoint(tmp_path):
    assert read_training(tmp_path) is None and read_training(None) is None
    for k, env in enumerate(["point-robot-sparse", "cheetah-vel"]):
        (tmp_path / env).mkdir()
        (tmp_path / env / "training.json").write_text(json.dumps(
            {"wall_seconds": 100.0 + k, "algo": "focal", "seed": 2, "profile": "lite", "dataset": f"bitr/{env}/x",
             "ignored": 1}))
    assert read_training(tmp_path) == {"wall_seconds": 201.0, "algo": "focal", "seed": 2, "profile": "lite",
                                       "dataset": ["bitr/cheetah-vel/x", "bitr/point-robot-sparse/x"]}
    # the suite's families only: a checkpoint folder may hold more than the suite scores
    assert read_training(tmp_path, {"cheetah-vel"}) == {"wall_seconds": 101.0, "algo": "focal", "seed": 2,
                                                        "profile": "lite", "dataset": "bitr/cheetah-vel/x"}
    (tmp_path / "training.json").write_text(json.dumps({"wall_seconds": 5, "algo": "bitr"}))
    assert read_training(tmp_path) == {"wall_seconds": 5, "algo": "bitr", "seed": None, "profile": None,
                                       "dataset": None}


# Typed suites ---------------------------------------------------------------------------------

def test_protocols_are_parsed_once():
    assert Protocol.parse("offline-other-task") == Protocol("offline-other-task", "offline-other-task", "other", None)
    unseen = Protocol.parse("offline-unseen:detour")
    assert unseen == Protocol("offline-unseen:detour", "offline-unseen", "ood", "detour")
    assert Protocol.parse("offline-ood").pool == "ood"  # the v0 suites' name of offline-unseen
    assert Protocol.parse("offline-iid:expert") == Protocol("offline-iid:expert", "offline-iid", "iid", "expert")
    assert not Protocol.parse("online").takes_context
    for bad in ("offline", "online:expert", "offline-iid:"):
        with pytest.raises(ValueError, match="Unknown protocol"):
            Protocol.parse(bad)


def test_suites_come_from_the_registry():
    full = suite("full-v1")
    assert list(dict.fromkeys(u.env_id for u in full.units)) == list(ENVS)
    ood_envs = {u.env_id for u in full.units if u.split == "ood"}
    assert ood_envs == set(ENVS) - {"bitr/CheetahDir-v0", "bitr/AntDir-v0"}
    assert {u.context_episodes for u in full.units if "PointRobot" in u.env_id} == {5}
    assert suite("lite").protocols == list(V0_PROTOCOLS)
    lite = suite("lite-v1")
    assert lite.protocols == list(PROTOCOLS)
    assert {(u.split, u.protocol) for u in lite.units if u.env_id == "bitr/ReachSparse-v0"} == {
        (split, p) for split in ("test", "ood") for p in PROTOCOLS}
    other = next(u for u in lite.units if u.split == "ood" and u.protocol == "offline-other-task")
    assert (other.context_dataset, other.reference_dataset) == ("bitr/point-robot-sparse/ood-other-lite-v0",
                                                                "bitr/point-robot-sparse/ood-iid-lite-v0")
    assert "offline-other-task:other-expert" in suite("lite-v1-behaviours").protocols
    unit = suite("lite").units[4]
    assert (unit.context_dataset, unit.reference_dataset) == ("bitr/cheetah-vel/test-ood-lite-v0",
                                                              "bitr/cheetah-vel/test-iid-lite-v0")
    behaviours = suite("lite-behaviours")
    assert all(":" in p for p in behaviours.protocols) and "offline-ood:detour" in behaviours.protocols
    assert all(u.kind.behaviour for u in behaviours.units)
    # the core suites are the same units as their parents', on the first two families
    core, lite = suite("lite-core"), suite("lite")
    assert {u.env_id for u in core.units} == {"bitr/PointRobotSparse-v0", "bitr/CheetahVel-v0"}
    assert set(core.units) == {u for u in lite.units if u.env_id in {x.env_id for x in core.units}}
    assert set(suite("lite-core-behaviours").units) < set(behaviours.units) and core.seeds == lite.seeds


def test_evaluate_help_lists_the_suites():
    evaluate = build_parser()._subparsers._group_actions[0].choices["evaluate"]
    suite_option = next(a for a in evaluate._actions if a.dest == "suite")
    assert list(suite_option.choices) == list(SUITES) and "quick" in suite_option.choices


def fake_task(labels_per_episode, length=4):
    from bitr_envs.datasets.loader import TaskData

    n = len(labels_per_episode) * length
    ends = np.zeros(n, dtype=bool)
    ends[length - 1::length] = True
    return TaskData(observations=np.arange(n)[:, None].astype(float), actions=np.zeros((n, 1)), rewards=np.zeros(n),
                    next_observations=np.zeros((n, 1)), terminals=np.zeros(n, dtype=bool), timeouts=ends,
                    behaviours=np.repeat(labels_per_episode, length), pursued=np.zeros(n, dtype=np.int64))


def test_context_rows_draws_whole_episodes_of_one_behaviour():
    task = fake_task([0, 1, 2, 1, 0, 1, 2, 2])
    for seed in range(5):
        rows = context_rows(task, None, 3, np.random.default_rng(seed))
        assert len(rows) == 12 and len(set(rows // 4)) == 3  # three whole episodes, no repeats
        one = context_rows(task, 1, 2, np.random.default_rng(seed))
        assert len(one) == 8 and set(task.behaviours[one]) == {1} and set(one % 4 == 0) == {True, False}
    assert len(context_rows(task, 0, 5, np.random.default_rng(0))) == 8  # only 2 episodes of label 0
    with pytest.raises(ValueError, match="no episode of behaviour label 9"):
        context_rows(task, 9, 1, np.random.default_rng(0))


def test_unit_context_is_the_plain_draw_or_one_behaviour():
    from types import SimpleNamespace

    from bitr_eval.suites import unit_context

    data = SimpleNamespace(behaviour_names=["random", "medium", "expert"], tasks=[fake_task([0, 1, 2, 1, 0, 2])])
    plain, expert = suite("lite").units[0], suite("lite-behaviours").units[3]
    assert expert.protocol == "offline-iid:expert" and plain.protocol == "offline-iid"
    mine = unit_context(plain, data, 0, np.random.default_rng(3))
    rows = context_rows(data.tasks[0], None, plain.context_episodes, np.random.default_rng(3))
    assert "behaviours" not in mine and np.array_equal(mine["observations"], data.tasks[0].observations[rows])
    chosen = unit_context(expert, data, 0, np.random.default_rng(3))
    assert "behaviours" not in chosen and len(chosen["rewards"]) == 8
    assert set(chosen["observations"][:, 0] // 4) == {2, 5}  # the two expert episodes


def test_a_current_suite_ranks_on_test_tasks_with_the_other_task_drop_and_the_ood_tasks(tmp_path):
    """On a -v1 suite the board's scores are the test tasks', its drop is to the other-task
    context, and the ood tasks' offline-iid score has its own column."""
    from bitr_eval.scoring import aggregates, score_episodes

    chosen = suite("tiny-v1")
    two = []
    for k, level in enumerate((60.0, 62.0)):
        result = make_result("v1", level, suite_name="tiny-v1", checkpoint=f"runs/v1/seed{k}")
        for unit, record in zip(chosen.units, result["units"]):
            # the other-task context costs 40 points; an ood task 20 more
            cost = 40.0 * (unit.protocol == "offline-other-task") + 20.0 * (unit.split == "ood")
            for episode in record["episodes"]:
                episode["return"] -= cost
            record.update(score_episodes(unit, chosen.seeds, record["episodes"], record["references"]))
        result["aggregates"] = aggregates(result["units"])
        two.append(result)
    assert add(tmp_path, two, "--name", "v1") == 0
    assert main(["leaderboard", "render", "--dir", str(tmp_path / "board")]) == 0
    readme = (tmp_path / "board" / "README.md").read_text()
    assert ("| Rank | Entry | Agent | Runs | Score, test tasks (mean [95% CI]) | IQM [95% CI] | iid→other-task drop "
            "| ood tasks, offline-iid | Training time |") in readme
    [row] = table(readme, "### offline-iid")
    assert row[4].startswith("61.0 [") and row[6].startswith("40.0 [") and row[7].startswith("41.0 [")
    [row] = table(readme, "### offline-other-task")
    assert row[4].startswith("21.0 [")  # test tasks only: the ood tasks' 1.0 is not mixed in
    # the figures of a current suite: the context-shift curve and test against ood tasks
    from xml.etree import ElementTree

    plots = tmp_path / "board" / "plots"
    assert sorted(p.name for p in plots.iterdir()) == ["tiny-v1-shift.svg", "tiny-v1-tasks.svg", "tiny-v1.svg"]
    svg = "{http://www.w3.org/2000/svg}"
    curve = ElementTree.fromstring((plots / "tiny-v1-shift.svg").read_text())
    # from the training pool's context to another task's, the entry's mean at each point
    assert [t.text for t in curve.iter(f"{svg}tspan")] == ["offline-iid", "offline-unseen", "offline-other-task"]
    points = [t.text for t in curve.iter(f"{svg}title")]
    assert [p.split(": ")[1].split(" ")[0] for p in points] == ["61.0", "61.0", "21.0"]
    gap = ElementTree.fromstring((plots / "tiny-v1-tasks.svg").read_text())
    [dot] = [t.text for t in gap.iter(f"{svg}title")]
    assert dot.startswith("v1: test tasks 61.0 [") and ", ood tasks 41.0 [" in dot


def test_one_run_filed_twice_and_an_unpinned_suite_are_refused(tmp_path, capsys, monkeypatch):
    from bitr_envs.datasets import storage

    one = make_result("copy", 50.0, checkpoint="runs/copy/seed0")
    spelled = [json.loads(json.dumps(one)) for _ in range(3)]
    for run, spelling in zip(spelled, ("runs/copy/seed0", "runs/copy/seed0/", "./runs/copy/seed0")):
        run["submission"]["checkpoint"] = spelling
    assert add(tmp_path, spelled, "--name", "copies") == 2
    assert "two runs have the same checkpoint" in capsys.readouterr().err
    for k, run in enumerate(spelled):
        run["submission"]["checkpoint"] = f"runs/copy/seed{k}"  # other names, the same episodes
    assert add(tmp_path, spelled, "--name", "copies") == 2
    assert "two runs have the same episodes, return for return" in capsys.readouterr().err
    from bitr_eval import checks, filing

    monkeypatch.setattr(filing, "check_pinned_suite", checks.check_pinned_suite)  # the real check
    pinned = {d: {"data_sha256": "a" * 64, "content_sha256": "a" * 64} for d in suite("tiny").datasets}
    monkeypatch.setattr(storage, "pins", lambda: {d: p for d, p in pinned.items() if "test-iid" not in d})
    assert add(tmp_path, one) == 2
    assert "the tiny suite's datasets are not pinned yet" in capsys.readouterr().err
