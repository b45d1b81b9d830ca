"""`bitr-agent sweep`: methods x families x seeds trained and evaluated as commands, resumably
(here with fake commands that write what the real ones would)."""

from __future__ import annotations

import json
import sys

import pytest

pytest.importorskip("torch")

from test_leaderboard import make_result, no_local_data  # noqa: E402, F401 (the fixture is used)

from bitr_agent.cli import main  # noqa: E402
from bitr_agent.sweep import plan, sweep  # noqa: E402

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
    assert outcome["failed"] == [f"train broken seed {seed} bitr/PointRobotSparse-v0" for seed in (0, 1)]
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
    not_in_suite = ["sweep", "--algos", "bitr", "--envs", "bitr/AntDir-v0", "--seeds", "0", "--out", "x", "--dry-run"]
    assert main(not_in_suite) == 2


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


def test_a_sealed_sweep_names_its_results_by_key_and_counts_only_that_key_s(tmp_path, fakes):
    """A run is scored once per key: its result file names the key, and a public result (or
    another key's) in its place does not count as done. The ceiling loads privileged."""
    from bitr_eval.sealed import read_key

    key = tmp_path / "board.key"
    key.write_bytes(b"the maintainer's key, 32 bytes..")
    seal = read_key(key)
    _, evals = plan(["bitr", "oracle_task"], ["bitr/PointRobotSparse-v0"], [0], "tiny", "tiny", "runs",
                    sealed=str(key))
    run = evals[("bitr", 0)]
    assert run.result.name == f"result-tiny-{seal.key_sha256[:8]}.json"
    assert run.log.name == f"evaluate-tiny-{seal.key_sha256[:8]}.log"
    assert run.command[-3:] == ["--sealed", str(key), "--require-sandbox"]
    assert evals[("oracle_task", 0)].command[3] == "bitr_agent:load_privileged"
    assert evals[("bitr", 0)].command[3] == "bitr_agent:load"

    public, _ = run_sweep(tmp_path / "sweep", fakes, algos=("bitr",), sealed=str(key))
    assert public["failed"] == ["evaluate bitr seed 0", "evaluate bitr seed 1"]  # the fake wrote public results
    sealed_result = make_result("fake")
    sealed_result["sealed"] = {"key_sha256": seal.key_sha256}
    (tmp_path / "template.json").write_text(json.dumps(sealed_result))
    again, _ = run_sweep(tmp_path / "sweep", fakes, algos=("bitr",), sealed=str(key))
    assert again["ok"] == ["evaluate bitr seed 0", "evaluate bitr seed 1"]
    done, _ = run_sweep(tmp_path / "sweep", fakes, algos=("bitr",), sealed=str(key))
    assert done["ok"] == [] and len(done["done"]) == 4
    # the public sweep's result-tiny.json is not made yet, and a sealed file there does not count
    public_again, _ = run_sweep(tmp_path / "sweep", fakes, algos=("bitr",))
    assert public_again["failed"] == ["evaluate bitr seed 0", "evaluate bitr seed 1"]
    (tmp_path / "template.json").write_text(json.dumps(make_result("fake")))
    public_again, _ = run_sweep(tmp_path / "sweep", fakes, algos=("bitr",))
    assert public_again["ok"] == ["evaluate bitr seed 0", "evaluate bitr seed 1"]
