"""The BITR reference agent: components, learning, exact resume, safe checkpoints, evaluation."""

import dataclasses
import json
import pickle
import re
import shutil

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import build_minari_root

from bitr_agent import CheckpointError, load  # noqa: E402
from bitr_agent.config import from_profile  # noqa: E402
from bitr_agent.data import Sampler, TaskArrays  # noqa: E402
from bitr_agent.diagnostics import TrainingFailed  # noqa: E402
from bitr_agent.methods import BITR  # noqa: E402
from bitr_agent.methods import bitr as bitr_module  # noqa: E402
from bitr_agent.model import Actor, Critics, TaskEncoder, WorldModel, info_nce, reverse_gradient  # noqa: E402
from bitr_agent.train import train  # noqa: E402
from bitr_envs import datasets  # noqa: E402
from bitr_eval import evaluate, suite, validate  # noqa: E402

TRAIN = "bitr/point-robot-sparse/train-iid-tiny-v0"
SMALL = from_profile(
    "quick", dataset=TRAIN, wm_iterations=40, sac_iterations=40, task_batch=8, width=32,
    hidden=32, context_size=16, checkpoint_every=10, log_every=20, cql_actions=3,
)


@pytest.fixture(scope="module")
def minari_root(tmp_path_factory):
    yield from build_minari_root(tmp_path_factory, [TRAIN] + suite("tiny").datasets)


@pytest.fixture(autouse=True)
def root(minari_root, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_root))


@pytest.fixture(scope="module")
def trained(minari_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("bitr") / "run"  # a run folder as training makes it (pytest's are 0700)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(minari_root))
        train(SMALL, out, progress=False)
    return out


def sampler(cfg=SMALL, seed=0):
    data = datasets.load(TRAIN)
    obs = np.concatenate([t.observations for t in data.tasks])
    scale = np.array([0.1, 0.1], np.float32)
    tasks = [TaskArrays(t, obs.mean(0), obs.std(0) + 1e-3, scale, cfg.history) for t in data.tasks]
    return Sampler(tasks, cfg, np.random.default_rng(seed)), len(data.behaviour_names)


def test_component_shapes():
    encoder = TaskEncoder(obs_dim=3, act_dim=2, z_dim=5, width=16)
    x = torch.randn(4, 7, 3)
    z = encoder(x, torch.randn(4, 7, 2), torch.randn(4, 7), x + 1)
    assert z.shape == (4, 5)
    # a set encoder: the order of the context does not matter
    perm = torch.randperm(7)
    a, r = torch.randn(4, 7, 2), torch.randn(4, 7)
    torch.testing.assert_close(encoder(x, a, r, x + 1), encoder(x[:, perm], a[:, perm], r[:, perm], (x + 1)[:, perm]))
    wm = WorldModel(obs_dim=3, act_dim=2, z_dim=5, width=16, layers=2, heads=4, context=6)
    mean, log_std, done = wm(torch.randn(4, 6, 3), torch.randn(4, 6), torch.randn(4, 6, 2), z)
    assert mean.shape == log_std.shape == (4, 6, 4) and done.shape == (4, 6)
    # causal: the prediction at step 2 does not depend on steps after it
    obs = torch.randn(1, 6, 3)
    later = obs.clone()
    later[:, 3:] += 5
    out_a = wm(obs, torch.zeros(1, 6), torch.zeros(1, 6, 2), z[:1])[0]
    out_b = wm(later, torch.zeros(1, 6), torch.zeros(1, 6, 2), z[:1])[0]
    torch.testing.assert_close(out_a[:, :3], out_b[:, :3])
    action, log_prob, mode = Actor(8, 2, 16)(torch.randn(10, 8))
    assert action.shape == mode.shape == (10, 2) and log_prob.shape == (10,) and action.abs().max() <= 1
    q1, q2 = Critics(10, 16)(torch.randn(10, 10))
    assert q1.shape == q2.shape == (10,)


def test_contrastive_loss_and_gradient_reversal():
    z = torch.randn(6, 4)
    assert info_nce(z, z, 0.1) < info_nce(z, torch.randn(6, 4), 0.1)
    x = torch.ones(3, requires_grad=True)
    reverse_gradient(x, 0.5).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), -0.5))


def test_a_few_steps_decrease_the_losses():
    torch.manual_seed(0)
    s, n_behaviours = sampler()
    learner = BITR(SMALL, 2, 2, n_behaviours, 20)
    representation = [learner.update_representation(s) for _ in range(80)]
    first, last = representation[:10], representation[-10:]
    for key in ("reconstruction", "contrastive"):
        assert np.mean([m[key] for m in last]) < np.mean([m[key] for m in first]), key
    policy = [learner.update_policy(s) for _ in range(80)]
    assert all(np.isfinite(list(m.values())).all() for m in policy)
    assert np.mean([m["actor"] for m in policy[-10:]]) < np.mean([m["actor"] for m in policy[:10]])


def test_switching_the_invariance_terms_off():
    s, n_behaviours = sampler()
    cfg = dataclasses.replace(SMALL, adversary_weight=0.0, contrastive_weight=0.0, reconstruction_weight=0.0)
    learner = BITR(cfg, 2, 2, n_behaviours, 20)
    before = [p.clone() for p in learner.encoder.parameters()]
    learner.update_representation(s)
    # no term reaches the encoder: it does not move
    assert all(torch.equal(a, b) for a, b in zip(before, learner.encoder.parameters()))


def test_a_resumed_run_logs_each_iteration_once_and_keeps_counting_its_time(tmp_path, monkeypatch):
    import csv
    import time

    from bitr_agent import train as train_module

    cfg = dataclasses.replace(SMALL, checkpoint_every=40)
    out = tmp_path / "run"

    def rows(folder):
        with open(folder / "metrics.csv", newline="") as f:
            return [(int(r["iteration"]), float(r["seconds"])) for r in csv.DictReader(f)]

    # the first process stalls for 1000 s (on its clock) after its checkpoint, then is killed
    stall, monotonic, save = [0.0], time.monotonic, train_module.save_checkpoint
    monkeypatch.setattr(time, "monotonic", lambda: monotonic() + stall[0])

    def save_then_stall(*args, **kwargs):
        save(*args, **kwargs)
        stall[0] += 1000.0

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_stall)
    train(cfg, out, progress=False, stop_after=70)  # killed after logging 60; its last checkpoint is at 40
    assert [i for i, _ in rows(out)] == [20, 40, 60] and rows(out)[2][1] > 1000
    at_checkpoint = rows(out)[1][1]
    monkeypatch.setattr(train_module, "save_checkpoint", save)
    train(cfg, out, progress=False)
    iterations, seconds = zip(*rows(out))
    assert list(iterations) == [20, 40, 60, 80]  # 60 logged once, by the process that kept it
    assert list(seconds) == sorted(seconds) and seconds[1] == at_checkpoint  # one clock over both processes
    assert seconds[3] < 1000  # the killed process's time past its checkpoint is not counted
    # a run killed before its first checkpoint starts over, its metrics too
    fresh = tmp_path / "fresh"
    train(cfg, fresh, progress=False, stop_after=30)  # logged 20, no checkpoint yet
    assert [i for i, _ in rows(fresh)] == [20] and not (fresh / "checkpoint.pt").exists()
    train(cfg, fresh, progress=False)
    assert [i for i, _ in rows(fresh)] == [20, 40, 60, 80]


def test_a_finished_run_without_its_checkpoint_is_trained_again_only_when_asked(tmp_path):
    """A committed run folder has agent.pt and metrics but no checkpoint (not committed):
    training into it again must not silently replace them."""
    from bitr_agent.checkpoint import RunFolderError

    out = tmp_path / "committed"
    train(SMALL, out, progress=False)
    (out / "checkpoint.pt").unlink()
    agent, metrics = (out / "agent.pt").read_bytes(), (out / "metrics.csv").read_bytes()
    with pytest.raises(RunFolderError, match="finished run .* --restart"):
        train(SMALL, out, progress=False)
    assert (out / "agent.pt").read_bytes() == agent and (out / "metrics.csv").read_bytes() == metrics
    train(SMALL, out, progress=False, restart=True)
    assert (out / "metrics.csv").read_bytes().count(b"\n") == metrics.count(b"\n")  # one run's rows, not two


def test_kill_and_resume_gives_the_same_agent_as_an_uninterrupted_run(trained, tmp_path):
    interrupted = tmp_path / "interrupted"
    train(SMALL, interrupted, progress=False, stop_after=30)  # as if killed at iteration 30
    assert (interrupted / "checkpoint.pt").exists() and not (interrupted / "agent.pt").exists()
    train(SMALL, interrupted, progress=False)
    whole = torch.load(trained / "agent.pt", weights_only=True)
    resumed = torch.load(interrupted / "agent.pt", weights_only=True)
    for part in ("encoder", "actor"):
        for key, value in whole[part].items():
            torch.testing.assert_close(resumed[part][key], value, rtol=0, atol=0)
    with pytest.raises(ValueError, match="another config"):
        train(dataclasses.replace(SMALL, lr=1e-2), interrupted, progress=False)
    longer = dataclasses.replace(SMALL, sac_iterations=SMALL.sac_iterations + 10)
    train(longer, interrupted, progress=False)  # a finished run trained for longer
    last_row = (interrupted / "metrics.csv").read_text().splitlines()[-1]
    assert last_row.startswith(f"{SMALL.wm_iterations + longer.sac_iterations},policy")
    extended = torch.load(interrupted / "agent.pt", weights_only=True)
    assert not torch.equal(extended["actor"]["trunk.0.weight"], whole["actor"]["trunk.0.weight"])
    with pytest.raises(ValueError, match="can only grow"):
        train(SMALL, interrupted, progress=False)


def diverged_policy_update(q):
    def update_policy(self, sampler):
        return {"bellman": 1.0, "cql_penalty": 0.0, "actor": 0.0, "alpha": 0.1, "q": q}
    return update_policy


@pytest.mark.parametrize("failure, message", [
    ("collapse", r"iteration 20 \(representation phase\): the task encoder collapsed.*ln\(8\) = 2.079"),
    ("diverged", r"iteration 60 \(policy phase\): the critic diverged \(mean Q 1e\+12"),
    ("nan", r"iteration 60 \(policy phase\): non-finite q"),
])
def test_a_collapsed_or_diverged_run_stops_with_a_clear_error_and_no_agent(failure, message, tmp_path, monkeypatch):
    if failure == "collapse":  # every task's z is 0: InfoNCE sits exactly at chance
        monkeypatch.setattr(bitr_module, "encode", lambda encoder, context: 0 * encoder(
            context["obs"], context["act"], context["rew"], context["next_obs"]))
    else:
        q = 1e12 if failure == "diverged" else float("nan")
        monkeypatch.setattr(BITR, "update_policy", diverged_policy_update(q))
    with pytest.raises(TrainingFailed, match=message):
        train(SMALL, tmp_path / failure, progress=False)
    assert not (tmp_path / failure / "agent.pt").exists()


def test_without_the_conservative_penalty_an_overestimating_critic_trains_on(tmp_path, monkeypatch):
    """The no-CQL ablation measures what overestimation costs, so its large Q is logged, not fatal."""
    monkeypatch.setattr(BITR, "update_policy", diverged_policy_update(1e12))
    train(dataclasses.replace(SMALL, cql_weight=0.0), tmp_path / "no-cql", progress=False)
    assert (tmp_path / "no-cql" / "agent.pt").exists()
    assert (tmp_path / "no-cql" / "metrics.csv").read_text().splitlines()[-1].split(",")[0] == "80"


def test_metrics_log_has_the_diagnostics(trained):
    import csv

    rows = list(csv.DictReader(open(trained / "metrics.csv")))
    final = rows[-1]
    assert final["iteration"] == "80" and final["phase"] == "policy"
    for key in ("task_id_accuracy", "behaviour_probe_accuracy", "wm_one_step_mse"):
        assert 0 <= float(final[key]) < 1e6


def test_probes_table_reads_each_runs_last_diagnostics(trained, tmp_path, capsys):
    """`bitr-agent probes` over a sweep folder: per method and family, each finished run's last
    probe row in seed order; unfinished runs and folders that are not runs are passed over; a
    folder with no run, or a run whose metrics.csv is broken, is refused with the reason."""
    from bitr_agent.cli import main

    sweep = tmp_path / "sweep"
    for seed in (10, 2):  # seed 10 after seed 2: numeric order, not the folders' names
        shutil.copytree(trained, sweep / "bitr" / f"seed{seed}" / "point-robot-sparse")
    metrics = sweep / "bitr" / "seed10" / "point-robot-sparse" / "metrics.csv"
    metrics.write_text(metrics.read_text().replace(str(RECORDED["task_id_accuracy"]), "0.9"))
    unfinished = sweep / "focal" / "seed0" / "point-robot-sparse"
    shutil.copytree(trained, unfinished)
    (unfinished / "agent.pt").unlink()
    shutil.copytree(trained, sweep / "bitr" / "seed0-old" / "point-robot-sparse")  # not a run's folder
    (sweep / "bitr" / "seeds.txt").write_text("notes")
    assert main(["probes", str(sweep)]) == 0
    task, behaviour = (f"{100 * RECORDED[k]:.0f}%" for k in ("task_id_accuracy", "behaviour_probe_accuracy"))
    assert capsys.readouterr().out.splitlines()[2:] == [f"| `bitr` | {task} / 90% | {behaviour} / {behaviour} |"]
    metrics.write_text(metrics.read_text().replace("0.9", "n/a"))
    assert main(["probes", str(sweep)]) == 2
    assert f"{metrics}: its last diagnostics row has no number" in capsys.readouterr().err
    assert main(["probes", str(tmp_path / "nowhere")]) == 2
    assert "no finished run under" in capsys.readouterr().err


def test_the_results_page_holds_the_committed_runs_probes():
    """The probes table on the results page is what `bitr-agent probes` makes of the committed runs."""
    import pathlib

    from bitr_agent.diagnostics import probes_table

    root = pathlib.Path(__file__).parent.parent
    assert probes_table(root / "leaderboard" / "runs" / "lite") in (root / "docs" / "results.md").read_text()


# SMALL's final losses as the single-file trainer wrote them before the methods were split into
# their own files: the refactor kept BITR's default run bit for bit (same seeds, same order of
# random draws). A tolerance allows for other CPUs' floating point, not for a changed recipe.
RECORDED = {"bellman": 3.199824571609497, "cql_penalty": 6.355221748352051, "actor": -1.426100730895996,
            "alpha": 0.9883602261543274, "q": 0.07540882378816605, "task_id_accuracy": 0.3625,
            "behaviour_probe_accuracy": 0.1875, "wm_one_step_mse": 0.036010194569826126}


def test_bitr_reproduces_the_recorded_run(trained):
    import csv

    final = list(csv.DictReader(open(trained / "metrics.csv")))[-1]
    for key, value in RECORDED.items():
        assert float(final[key]) == pytest.approx(value, rel=1e-4), key


def test_a_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "agent.pt"
    with open(path, "wb") as f:
        pickle.dump({"encoder": Payload()}, f)
    with pytest.raises(CheckpointError, match="refused"):
        load("bitr/PointRobotSparse-v0", None, None, checkpoint=str(path))
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="No checkpoint"):
        load("bitr/PointRobotSparse-v0", None, None, checkpoint=str(tmp_path / "missing.pt"))


def test_online_adaptation_re_infers_z(trained):
    env = gym.make("bitr/PointRobotSparse-v0", split="test")
    agent = load("bitr/PointRobotSparse-v0", env.observation_space, env.action_space, checkpoint=str(trained))
    agent.reset()
    prior = agent.z.clone()
    obs, _ = env.reset(seed=0, options={"task": 1})
    action = agent.act(obs)
    assert env.action_space.contains(action)
    next_obs, reward, terminated, truncated, _ = env.step(action)
    agent.observe(obs, action, reward, next_obs, terminated, truncated)
    assert not torch.equal(agent.z, prior)
    agent.reset()
    assert torch.equal(agent.z, prior)
    context_free = load("bitr/PointRobotSparse-v0", env.observation_space, env.action_space,
                        checkpoint=str(trained), context_free=True)
    context_free.observe(obs, action, reward, next_obs, terminated, truncated)
    assert torch.equal(context_free.z, prior)
    with pytest.raises(CheckpointError, match="trained on bitr/PointRobotSparse-v0"):
        load("bitr/CheetahVel-v0", env.observation_space, env.action_space, checkpoint=str(trained))


def test_the_agent_passes_an_evaluator_run(trained, tmp_path):
    result = evaluate(suite("tiny"), {"name": "bitr", "agent": "bitr_agent:load", "checkpoint": str(trained)},
                      tmp_path / "bitr.json", jobs=3)
    validate(result)
    assert [u["status"] for u in result["units"]] == ["ok"] * 3, [u["failure"] for u in result["units"]]


def test_a_folder_of_per_family_runs_serves_a_multi_family_suite(trained, tmp_path):
    # `bitr-agent train --out runs/bitr/point-robot-sparse` etc.: one --checkpoint for the suite
    shutil.copytree(trained, tmp_path / "runs" / "point-robot-sparse")
    env = gym.make("bitr/PointRobotSparse-v0", split="test")
    agent = load("bitr/PointRobotSparse-v0", env.observation_space, env.action_space, checkpoint=str(tmp_path / "runs"))
    direct = load("bitr/PointRobotSparse-v0", env.observation_space, env.action_space, checkpoint=str(trained))
    assert torch.equal(agent.z, direct.z)
    with pytest.raises(CheckpointError, match="no BITR agent for bitr/CheetahVel-v0 in .*runs/cheetah-vel/agent.pt"):
        load("bitr/CheetahVel-v0", env.observation_space, env.action_space, checkpoint=str(tmp_path / "runs"))


def test_a_finished_run_records_how_it_was_made(tmp_path, capsys):
    from bitr_agent.cli import main as train_main

    assert train_main(["train", "--dataset", TRAIN, "--profile", "quick", "--out", str(tmp_path), "--seed", "3",
                       "--wm-iterations", "20", "--sac-iterations", "20", "--log-every", "10"]) == 0
    # before its first update it has said what it does, step by step, with the time each took
    lines = capsys.readouterr().out.splitlines()
    before = lines[:next(i for i, line in enumerate(lines) if line.startswith("[10/40]"))]
    assert before[0] == f"bitr, seed 3: loading {TRAIN} ..."
    timed = [re.fullmatch(r"(.*) \(\d+\.\d s\)", line) for line in before[1:]]
    assert [m[1] if m else line for m, line in zip(timed, before[1:])] == [
        "  30 tasks, 4,800 transitions, 7 behaviour policies",
        "loading bitr/point-robot-sparse/test-iid-tiny-v0 (held out, for the diagnostics) ...", "  10 tasks",
        "built encoder, world_model, adversary, actor and critics",
        "training: 20 representation then 20 policy updates, a line every 10, a checkpoint every 500"]
    assert [bool(m) for m in timed] == [True, False, True, True, False]
    record = json.loads((tmp_path / "training.json").read_text())
    assert record["algo"] == "bitr" and record["seed"] == 3 and record["profile"] == "quick"
    assert record["dataset"] == TRAIN and record["wall_seconds"] > 0
