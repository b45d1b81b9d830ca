"""Board entries of several training runs, their statistics, the typed suites, and `bitr sweep`."""

from __future__ import annotations

import json
import sys

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
from bitr_eval.suites import PROTOCOLS, SUITES, Protocol, context_rows, suite
from bitr_eval.sweep import plan, sweep

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
    assert iid["FOCAL (tiny)"][6] == "0.0 [0.0, 0.0]"  # the same episodes under both contexts
    entries, warnings = filed(tmp_path / "board")
    assert warnings == [] and sorted(len(e["runs"]) for e in entries) == [1, 3]


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
    assert add(tmp_path, [make_result("a", checkpoint="1"), make_result("b", checkpoint="2")]) == 2
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
    (tmp_path / "training.json").write_text(json.dumps({"wall_seconds": 5, "algo": "bitr"}))
    assert read_training(tmp_path) == {"wall_seconds": 5, "algo": "bitr", "seed": None, "profile": None,
                                       "dataset": None}


# Typed suites ---------------------------------------------------------------------------------

def test_protocols_are_parsed_once():
    assert Protocol.parse("offline-ood") == Protocol("offline-ood", "offline-ood", "ood", None)
    assert Protocol.parse("offline-iid:expert") == Protocol("offline-iid:expert", "offline-iid", "iid", "expert")
    assert not Protocol.parse("online").takes_context
    for bad in ("offline", "online:expert", "offline-iid:"):
        with pytest.raises(ValueError, match="Unknown protocol"):
            Protocol.parse(bad)


def test_suites_come_from_the_registry():
    full = suite("full")
    assert list(dict.fromkeys(u.env_id for u in full.units)) == list(ENVS)
    ood_envs = {u.env_id for u in full.units if u.split == "ood"}
    assert ood_envs == set(ENVS) - {"bitr/CheetahDir-v0", "bitr/AntDir-v0"}
    assert {u.context_episodes for u in full.units if "PointRobot" in u.env_id} == {5}
    assert suite("lite").protocols == list(PROTOCOLS)
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
                    behaviours=np.repeat(labels_per_episode, length))


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


# bitr sweep -----------------------------------------------------------------------------------

FAKE_TRAIN = """import pathlib, sys
algo, out = sys.argv[1], pathlib.Path(sys.argv[2])
if algo == "broken":
    sys.exit("training diverged")
out.mkdir(parents=True, exist_ok=True)
(out / "agent.pt").write_text(algo)
"""


@pytest.fixture
def fakes(tmp_path):
    (tmp_path / "fake_train.py").write_text(FAKE_TRAIN)
    template = tmp_path / "template.json"
    template.write_text(json.dumps(make_result("fake")))
    train = f"{sys.executable} {tmp_path / 'fake_train.py'} {{algo}} {{out}}"
    evaluate = f"{sys.executable} -c 'import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2])' {template} {{result}}"
    return train, evaluate


def run_sweep(out, fakes, algos=("bitr", "focal"), **options):
    lines = []
    outcome = sweep(list(algos), ["bitr/PointRobotSparse-v0"], [0, 1], "tiny", "tiny", out, jobs=2,
                    train_template=fakes[0], eval_template=fakes[1], echo=lines.append, **options)
    return {k: sorted(v) for k, v in outcome.items()}, lines


def test_sweep_trains_then_evaluates_and_resumes(tmp_path, fakes):
    out = tmp_path / "sweep"
    outcome, _ = run_sweep(out, fakes)
    assert outcome["failed"] == outcome["blocked"] == outcome["done"] == []
    assert len(outcome["ok"]) == 8  # 2 algos x 2 seeds x (1 family + 1 evaluation)
    for algo in ("bitr", "focal"):
        for seed in (0, 1):
            folder = out / algo / f"seed{seed}"
            assert (folder / "point-robot-sparse" / "agent.pt").read_text() == algo
            training = json.loads((folder / "point-robot-sparse" / "training.json").read_text())
            assert training["algo"] == algo and training["seed"] == seed and training["wall_seconds"] >= 0
            assert training["dataset"] == "bitr/point-robot-sparse/train-iid-tiny-v0"
            assert json.loads((folder / "result-tiny.json").read_text())["submission"]["name"] == "fake"
    again, _ = run_sweep(out, fakes)
    assert again["ok"] == [] and len(again["done"]) == 8


def test_sweep_reports_a_failed_run_and_goes_on(tmp_path, fakes):
    outcome, lines = run_sweep(tmp_path / "sweep", fakes, algos=("broken", "bitr"))
    assert outcome["failed"] == ["train broken seed 0 bitr/PointRobotSparse-v0",
                                 "train broken seed 1 bitr/PointRobotSparse-v0"]
    assert outcome["blocked"] == ["evaluate broken seed 0", "evaluate broken seed 1"]
    assert len(outcome["ok"]) == 4
    log = tmp_path / "sweep" / "broken" / "seed0" / "point-robot-sparse" / "train.log"
    assert "training diverged" in log.read_text() and any(str(log) in line for line in lines)


def test_sweep_dry_run_prints_the_commands(tmp_path, capsys):
    assert main(["sweep", "--algos", "bitr,focal", "--envs", "bitr/PointRobotSparse-v0,bitr/CheetahVel-v0",
                 "--seeds", "0,1,2", "--profile", "lite", "--suite", "lite", "--out", str(tmp_path / "s"),
                 "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 * 3 * 3
    assert lines[0] == (f"bitr-agent train --algo bitr --dataset bitr/point-robot-sparse/train-iid-lite-v0 "
                        f"--profile lite --seed 0 --out {tmp_path}/s/bitr/seed0/point-robot-sparse")
    assert lines[2] == (f"bitr evaluate --agent bitr_agent:load --checkpoint {tmp_path}/s/bitr/seed0 --suite lite "
                        f"--out {tmp_path}/s/bitr/seed0/result-lite.json --name 'bitr seed 0' "
                        "--env bitr/PointRobotSparse-v0 --env bitr/CheetahVel-v0")
    assert not (tmp_path / "s").exists()
    assert main(["sweep", "--algos", "bitr", "--envs", "bitr/AntDir-v0", "--seeds", "0", "--out", "x",
                 "--dry-run"]) == 2


def test_sweep_on_ray_gives_the_same_outcome(tmp_path, fakes, monkeypatch):
    """The same outcome and files; a relative --out means the caller's directory, wherever Ray's
    workers started."""
    ray = pytest.importorskip("ray")
    local, _ = run_sweep(tmp_path / "local", fakes, algos=("broken", "bitr"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        monkeypatch.chdir(tmp_path)
        on_ray, _ = run_sweep("ray", fakes, algos=("broken", "bitr"), executor="ray")
    finally:
        ray.shutdown()
    assert not (tmp_path / "elsewhere" / "ray").exists()
    assert on_ray == local
    for path in (tmp_path / "local").rglob("*"):
        if path.name in ("agent.pt", "result-tiny.json"):
            assert (tmp_path / "ray" / path.relative_to(tmp_path / "local")).read_bytes() == path.read_bytes()


def test_sweep_evaluates_each_method_and_seed_before_training_the_next(tmp_path, fakes):
    """With one job, results land as soon as they can: an interrupted sweep keeps them."""
    lines = []
    sweep(["bitr", "focal"], ["bitr/PointRobotSparse-v0"], [0, 1], "tiny", "tiny", tmp_path / "sweep", jobs=1,
          train_template=fakes[0], eval_template=fakes[1], echo=lines.append)
    started = [line.removeprefix("start  ").removesuffix(" bitr/PointRobotSparse-v0") for line in lines
               if line.startswith("start")]
    assert started == [f"{kind} {algo} seed {seed}" for algo in ("bitr", "focal") for seed in (0, 1)
                       for kind in ("train", "evaluate")]


def test_sweep_keeps_a_relative_folder_relative(tmp_path, fakes, monkeypatch):
    """Result files record the checkpoint as the evaluate command got it: a relative folder
    replays from any clone of the repository. The runs happen in the caller's directory."""
    monkeypatch.chdir(tmp_path)
    sweep(["bitr"], ["bitr/PointRobotSparse-v0"], [0], "tiny", "tiny", "runs", jobs=1,
          train_template=fakes[0], eval_template=fakes[1], echo=lambda line: None)
    assert (tmp_path / "runs/bitr/seed0/point-robot-sparse/agent.pt").exists()
    assert (tmp_path / "runs/bitr/seed0/result-tiny.json").exists()
    _, evals = plan(["bitr"], ["bitr/PointRobotSparse-v0"], [0], "tiny", "tiny", "runs")
    command = evals[("bitr", 0)].command
    assert command[command.index("--checkpoint") + 1] == "runs/bitr/seed0"
    assert command[command.index("--out") + 1] == "runs/bitr/seed0/result-tiny.json"
