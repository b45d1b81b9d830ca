"""The peers in one harness: each method's own objective, where it differs from BITR, and that
every method trains end to end into an agent the evaluator's factory loads."""

import argparse
import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import build_minari_root

from bitr_agent import CheckpointError, load, load_privileged  # noqa: E402
from bitr_agent.agent import build_encoder  # noqa: E402
from bitr_agent.cli import evaluation_hint, main, suggested_suite  # noqa: E402
from bitr_agent.config import Config, from_profile, resolve  # noqa: E402
from bitr_agent.data import Sampler, TaskArrays, encode, flat  # noqa: E402
from bitr_agent.methods import ALGOS, BITR, CORRO, CSRO, FOCAL, UNICORN, ContextBC  # noqa: E402
from bitr_agent.methods.bitr import BITRMeanPool, BITRMLPWorldModel, BITRNoWorldModel, adversary_scale  # noqa: E402
from bitr_agent.methods.unicorn import beta_for  # noqa: E402
from bitr_agent.model import GaussianMLP, TaskEncoder, TransitionEncoder, club_upper_bound, distance_metric_loss  # noqa: E402
from bitr_agent.train import train  # noqa: E402
from bitr_agent.utils import add_dataclass_flags, set_fields  # noqa: E402
from bitr_envs import datasets  # noqa: E402
from bitr_envs.registry import entry  # noqa: E402
from bitr_eval import evaluate, suite, validate  # noqa: E402

TRAIN = "bitr/point-robot-sparse/train-iid-tiny-v0"
ENV = "bitr/PointRobotSparse-v0"
TINY = from_profile(
    "quick", dataset=TRAIN, wm_iterations=16, sac_iterations=4, wm_lr=3e-3, task_batch=6, width=16, hidden=16,
    context_size=12, batch_per_task=8, imagined_per_task=4, windows_per_task=2, cql_actions=2,
    checkpoint_every=100, log_every=100,
)


@pytest.fixture(scope="module")
def minari_root(tmp_path_factory):
    yield from build_minari_root(tmp_path_factory, [TRAIN] + suite("tiny").datasets)


@pytest.fixture(autouse=True)
def root(minari_root, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_root))
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tasks(minari_root):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(minari_root))
        data = datasets.load(TRAIN)
    env_class = entry(ENV).env_class
    obs = np.concatenate([t.observations for t in data.tasks])
    features = [env_class.task_features(p) for p in env_class.split_tasks("train")]
    return [TaskArrays(t, obs.mean(0), obs.std(0) + 1e-3, np.ones(2, np.float32), TINY.history, f)
            for t, f in zip(data.tasks, features)], len(data.behaviour_names)


def learner_and_sampler(tasks, algo, seed=0, **changes):
    arrays, n_behaviours = tasks
    cfg = resolve(dataclasses.replace(TINY, algo=algo, **changes))
    torch.manual_seed(seed)
    learner = ALGOS[algo](cfg, 2, 2, n_behaviours, len(arrays), task_dim=len(arrays[0].features))
    return learner, Sampler(arrays, cfg, np.random.default_rng(seed))


# ----- each method's objective ----------------------------------------------------------------
@pytest.mark.parametrize("algo, key", [
    ("bitr", "contrastive"), ("bitr-mlp-wm", "reconstruction"), ("bitr-mean-pool", "contrastive"),
    ("focal", "distance"), ("corro", "corro_nce"),
    ("csro", "distance"), ("unicorn", "decoder_nll"), ("cbc", "bc"),
])
def test_the_objective_decreases_over_a_few_steps(tasks, algo, key):
    learner, sampler = learner_and_sampler(tasks, algo)
    losses = [learner.update_representation(sampler) for _ in range(30)]
    assert set(losses[0]) == set(learner.loss_names)
    assert all(math.isfinite(v) for m in losses for v in m.values())
    assert np.mean([m[key] for m in losses[-5:]]) < np.mean([m[key] for m in losses[:5]]), [m[key] for m in losses]


def test_shapes_of_the_peers_parts(tasks):
    z = torch.randn(12, 3)
    labels = torch.arange(4).repeat_interleave(3)
    assert distance_metric_loss(z, labels).shape == ()
    # the distance loss prefers tasks apart and transitions of a task together
    apart = torch.arange(4).float().repeat_interleave(3).unsqueeze(1).expand(-1, 3) * 3
    assert distance_metric_loss(apart, labels) < distance_metric_loss(z, labels)
    learner, sampler = learner_and_sampler(tasks, "unicorn")
    assert learner.task_z(sampler, [0, 1, 2]).shape == (3, TINY.z_dim)
    learner, sampler = learner_and_sampler(tasks, "bitr-mlp-wm")
    ids = np.array([0, 1, 2])
    imagined = learner.imagine(sampler, ids, learner.task_z(sampler, ids))
    n = 3 * TINY.imagined_per_task
    assert imagined["obs"].shape == imagined["next_obs"].shape == (n, 2) and imagined["rew"].shape == (n,)
    assert learner.world_model.members == TINY.mlp_wm_members


def test_corro_negatives_share_the_anchors_state_and_action(tasks):
    learner, sampler = learner_and_sampler(tasks, "corro")
    for _ in range(5):
        learner.update_representation(sampler)
    ids = sampler.task_ids()
    anchor = flat(sampler.transitions(ids, 4))
    negative = learner.negatives(anchor, torch.as_tensor(ids).repeat_interleave(4))
    k = TINY.corro_negatives
    assert negative["obs"].shape == (len(anchor["rew"]), k, 2) and negative["rew"].shape == (len(anchor["rew"]), k)
    torch.testing.assert_close(negative["obs"], anchor["obs"].unsqueeze(1).expand(-1, k, -1), rtol=0, atol=0)
    torch.testing.assert_close(negative["act"], anchor["act"].unsqueeze(1).expand(-1, k, -1), rtol=0, atol=0)
    assert (negative["rew"] != anchor["rew"].unsqueeze(1)).all()
    assert (negative["next_obs"] != anchor["next_obs"].unsqueeze(1)).any(-1).all()
    noise, sampler = learner_and_sampler(tasks, "corro", corro_relabel="noise")
    negative = noise.negatives(anchor, None)
    torch.testing.assert_close(negative["obs"], anchor["obs"].unsqueeze(1).expand(-1, k, -1), rtol=0, atol=0)
    assert (negative["rew"] != anchor["rew"].unsqueeze(1)).all()


@pytest.mark.parametrize("rho", [0.0, 0.8])
def test_club_bounds_the_mutual_information_of_correlated_gaussians_from_above(rho):
    torch.manual_seed(0)
    x = torch.randn(4000, 1)
    z = rho * x + math.sqrt(1 - rho**2) * torch.randn(4000, 1)
    q = GaussianMLP(1, 1, 16)
    optimizer = torch.optim.Adam(q.parameters(), lr=1e-2)
    for _ in range(300):  # fit q(z | x) by likelihood, as CSRO does
        loss = q.nll(x, z)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        estimate = float(club_upper_bound(*q(x), z))
    true = -0.5 * math.log(1 - rho**2)
    assert estimate >= true - 0.02, (estimate, true)
    assert estimate < rho**2 / (1 - rho**2) + 0.15  # the bound of the true conditional, not far above
    if rho == 0:
        assert abs(estimate) < 0.05


def test_csro_minimises_club_through_the_encoder_only(tasks):
    learner, sampler = learner_and_sampler(tasks, "csro")
    q_before = [p.clone() for p in learner.club_q.parameters()]
    enc_before = [p.clone() for p in learner.encoder.parameters()]
    learner.update_representation(sampler)
    assert not all(torch.equal(a, b) for a, b in zip(enc_before, learner.encoder.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(q_before, learner.club_q.parameters()))  # fitted by NLL


@pytest.mark.parametrize("algo", ["focal", "bitr"])
def test_the_critic_loss_never_reaches_the_encoder(tasks, algo):
    learner, sampler = learner_and_sampler(tasks, algo)
    z = learner.task_z(sampler, sampler.task_ids())
    assert not z.requires_grad
    before = [p.clone() for p in learner.encoder.parameters()]
    for _ in range(2):
        learner.update_policy(sampler)
    assert all(torch.equal(a, b) for a, b in zip(before, learner.encoder.parameters()))
    assert all(p.grad is None for p in learner.encoder.parameters())


def test_bitr_without_world_model_learns_on_real_data_only(tasks):
    learner, sampler = learner_and_sampler(tasks, "bitr-no-wm")
    assert isinstance(learner, BITRNoWorldModel) and not hasattr(learner, "world_model")
    assert set(learner.update_representation(sampler)) == {"contrastive", "adversary"}
    batch, n_real = learner.policy_batch(sampler, np.array([0, 1]), torch.zeros(2, TINY.z_dim))
    assert n_real == len(batch["rew"]) == 2 * TINY.batch_per_task
    assert resolve(dataclasses.replace(TINY, algo="bitr-no-cql")).cql_weight == 0
    assert resolve(dataclasses.replace(TINY, algo="bitr-no-invariance")).adversary_weight == 0


def test_bitr_mean_pool_averages_its_transitions_where_bitr_attends(tasks):
    """The pooling ablation: two contexts joined give the mean of their z (set attention does
    not average); everything else is BITR's, and the exported agent pools the same way."""
    learner, sampler = learner_and_sampler(tasks, "bitr-mean-pool", unit_z=True)
    context, _ = sampler.contexts(np.array([0, 0]))
    context = {k: v.clone() for k, v in context.items()}
    context["rew"][1] += 5.0  # two contexts far apart
    context["obs"][1] += 3.0
    context["next_obs"][1] += 3.0
    joined = {k: v.reshape(1, -1, *v.shape[2:]) for k, v in context.items()}  # one set of both
    with torch.no_grad():
        parts, z = encode(learner.encoder, context), encode(learner.encoder, joined)[0]
    assert (parts[0] - parts[1]).norm() > 0.5
    assert torch.allclose(z, parts.mean(0), atol=1e-5) and z.norm() <= 1 + 1e-5
    assert set(learner.update_representation(sampler)) == set(BITR.loss_names)
    assert isinstance(build_encoder(learner.export()["model"]), TransitionEncoder)
    bitr, _ = learner_and_sampler(tasks, "bitr")
    assert isinstance(bitr.encoder, TaskEncoder) and bitr.export()["model"]["encoder"] == "set"


def test_the_ramped_adversary_weight_follows_danns_schedule():
    cfg = dataclasses.replace(TINY, adversary_ramp=True, adversary_weight=0.3)
    assert adversary_scale(cfg, 0.0) == 0.0
    assert adversary_scale(cfg, 0.5) == pytest.approx(0.3 * (2 / (1 + math.exp(-5)) - 1))
    assert adversary_scale(cfg, 1.0) == pytest.approx(0.3, abs=1e-4)
    assert adversary_scale(dataclasses.replace(cfg, adversary_ramp=False), 0.0) == 0.3
    assert Config().adversary_ramp is False


def test_unit_z_keeps_the_reversed_gradient_from_growing_z(tasks):
    """InfoNCE scores only z's direction, so nothing else bounds its norm, and the adversary's
    reversed gradient grows it (on Point-Robot-Sparse it ran away and the encoder collapsed)."""
    def norms(unit_z, adversary_weight):
        learner, sampler = learner_and_sampler(tasks, "bitr", unit_z=unit_z, adversary_weight=adversary_weight)
        before = learner.task_z(sampler, sampler.task_ids()).norm(dim=-1)
        for _ in range(40):
            learner.update_representation(sampler)
        return learner, before, learner.task_z(sampler, sampler.task_ids()).norm(dim=-1)

    _, before, after = norms(unit_z=False, adversary_weight=20.0)
    _, _, after_without_adversary = norms(unit_z=False, adversary_weight=0.0)
    assert after.mean() > 3 * before.mean() and after.mean() > 3 * after_without_adversary.mean()
    learner, _, after = norms(unit_z=True, adversary_weight=20.0)
    assert torch.allclose(after, torch.ones_like(after), atol=1e-5)
    assert build_encoder(learner.export()["model"]).normalise  # and so does the test-time agent


def test_unicorn_beta_by_family():
    assert beta_for(dataclasses.replace(TINY, dataset="bitr/cheetah-vel/train-iid-lite-v0")) == 0.15
    assert beta_for(dataclasses.replace(TINY, dataset="bitr/ant-dir/train-iid-lite-v0")) == 0.15
    assert beta_for(dataclasses.replace(TINY, dataset="bitr/hopper-param/train-iid-lite-v0")) == 1.5
    assert beta_for(dataclasses.replace(TINY, dataset="bitr/walker-param-sparse/train-iid-lite-v0")) == 0.7
    assert beta_for(TINY) == 1.0
    assert beta_for(dataclasses.replace(TINY, unicorn_beta=0.3)) == 0.3


# ----- every method, end to end ---------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_all(minari_root, tmp_path_factory):
    outs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(minari_root))
        for algo in ALGOS:
            outs[algo] = tmp_path_factory.mktemp(algo) / "run"  # as training makes it (pytest's are 0700)
            train(dataclasses.replace(TINY, algo=algo), outs[algo], progress=False)
    return outs


def test_every_algo_trains_and_its_agent_acts_in_the_env(trained_all):
    env = gym.make(ENV, split="test")
    env_class = type(env.unwrapped)
    for algo, out in trained_all.items():
        weights = torch.load(out / "agent.pt", weights_only=True)
        assert weights["algo"] == algo and "model" in weights
        privileged = algo == "oracle_task"
        factory = load_privileged if privileged else load
        agent = factory(ENV, env.observation_space, env.action_space, checkpoint=str(out))
        assert getattr(agent, "privileged", False) == privileged
        agent.reset()
        if privileged:
            agent.set_task(env_class.task_features(env.unwrapped.tasks[1]))
        obs, _ = env.reset(seed=0, options={"task": 1})
        for _ in range(3):
            action = agent.act(obs)
            assert env.action_space.contains(action), algo
            next_obs, reward, terminated, truncated, _ = env.step(action)
            agent.observe(obs, action, reward, next_obs, terminated, truncated)
            obs = next_obs
        with pytest.raises(CheckpointError, match="bitr_agent:load"):
            (load if privileged else load_privileged)(ENV, env.observation_space, env.action_space, checkpoint=str(out))


def test_the_ceiling_passes_an_evaluator_run_as_an_anchor(trained_all, tmp_path):
    submission = {"name": "oracle_task", "agent": "bitr_agent:load_privileged",
                  "checkpoint": str(trained_all["oracle_task"])}
    result = evaluate(suite("tiny"), submission, tmp_path / "result.json", jobs=1)
    validate(result)
    assert [u["status"] for u in result["units"]] == ["ok"] * 3, [u["failure"] for u in result["units"]]
    assert result["submission"]["privileged"]  # told the task: shown as an anchor, never ranked


def test_an_agent_file_from_before_the_split_loads_as_bitr(trained_all, tmp_path):
    weights = torch.load(trained_all["bitr"] / "agent.pt", weights_only=True)
    old = {k: v for k, v in weights.items() if k not in ("algo", "model")}
    old["config"] = {k: v for k, v in old["config"].items() if k in ("z_dim", "width", "hidden", "dataset", "seed")}
    torch.save(old, tmp_path / "agent.pt")
    env = gym.make(ENV, split="test")
    agent = load(ENV, env.observation_space, env.action_space, checkpoint=str(tmp_path))
    new = load(ENV, env.observation_space, env.action_space, checkpoint=str(trained_all["bitr"]))
    agent.set_context(context())
    new.set_context(context())
    obs = np.array([0.3, -0.2], np.float32)
    np.testing.assert_array_equal(agent.act(obs), new.act(obs))


def context(n=10, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 2)).astype(np.float32)
    return {"observations": obs, "actions": rng.uniform(-0.1, 0.1, (n, 2)).astype(np.float32),
            "rewards": rng.uniform(0, 1, n).astype(np.float32), "next_observations": obs + 0.1}


def test_context_free_ignores_the_context(trained_all):
    env = gym.make(ENV, split="test")
    agent = load(ENV, env.observation_space, env.action_space, checkpoint=str(trained_all["context_free"]))
    obs = np.array([0.3, -0.2], np.float32)
    agent.reset()
    before = agent.act(obs)
    agent.set_context(context(seed=1))
    np.testing.assert_array_equal(agent.act(obs), before)
    agent.observe(obs, before, 1.0, obs + 0.1, False, False)
    np.testing.assert_array_equal(agent.act(obs), before)


def test_csro_collects_its_own_context_without_a_prior(trained_all, monkeypatch):
    env = gym.make(ENV, split="test")
    agent = load(ENV, env.observation_space, env.action_space, checkpoint=str(trained_all["csro"]))
    agent.reset()
    policy_calls = []
    actor = agent.actor.forward
    monkeypatch.setattr(agent.actor, "forward", lambda x: policy_calls.append(x) or actor(x))
    obs, _ = env.reset(seed=0, options={"task": 2})
    zs = []
    for step in range(4):
        action = agent.act(obs)
        assert len(policy_calls) == step  # the first action is not the policy's: uniform random
        next_obs, reward, terminated, truncated, _ = env.step(action)
        agent.observe(obs, action, reward, next_obs, terminated, truncated)
        zs.append(agent.z.clone())  # re-inferred from everything collected so far, every step
        obs = next_obs
    assert all(not torch.equal(a, b) for a, b in zip(zs, zs[1:]))
    agent.reset()
    first = [agent.act(obs) for _ in range(20)]  # after a reset: random again, spread over the box
    assert np.std(first, 0).min() > 0.01 and len(policy_calls) == 3
    # offline: the given context, no random action
    agent.set_context(context())
    agent.act(obs)
    assert len(policy_calls) == 4


def test_resume_is_exact_for_a_peer(minari_root, tmp_path):
    cfg = dataclasses.replace(TINY, algo="corro", checkpoint_every=2)
    train(cfg, tmp_path / "whole", progress=False)
    train(cfg, tmp_path / "cut", progress=False, stop_after=3)
    train(cfg, tmp_path / "cut", progress=False)
    whole = torch.load(tmp_path / "whole" / "agent.pt", weights_only=True)
    cut = torch.load(tmp_path / "cut" / "agent.pt", weights_only=True)
    for part in ("encoder", "actor"):
        for key, value in whole[part].items():
            torch.testing.assert_close(cut[part][key], value, rtol=0, atol=0)


# ----- the command line -----------------------------------------------------------------------
def test_config_flags_from_the_dataclass():
    parser = argparse.ArgumentParser()
    add_dataclass_flags(parser, Config, skip=("algo", "dataset", "seed"), defaults=False)
    args = parser.parse_args(["--adversary-ramp", "--cql-weight", "2", "--corro-relabel", "noise"])
    assert set_fields(args, Config) == {"adversary_ramp": True, "cql_weight": 2.0, "corro_relabel": "noise"}
    assert set_fields(parser.parse_args(["--no-adversary-ramp"]), Config) == {"adversary_ramp": False}
    assert set_fields(parser.parse_args([]), Config) == {}


def test_the_suggested_suite_matches_the_run():
    assert suggested_suite(ENV, "bitr/point-robot-sparse/train-iid-lite-v0", "quick").name == "quick-v1"
    assert suggested_suite(ENV, "bitr/point-robot-sparse/train-iid-lite-v0", "lite").name == "lite-v1"
    # no quick suite has Cheetah-Vel: the smallest current suite that has it on lite data
    assert suggested_suite("bitr/CheetahVel-v0", "bitr/cheetah-vel/train-iid-lite-v0", "quick").name == "lite-core-v1"
    assert suggested_suite(ENV, TRAIN, "quick").name == "tiny-v1"
    assert suggested_suite("bitr/HopperParam-v0", "bitr/hopper-param/train-iid-lite-v0", "lite").name == "lite-more-v1"
    assert suggested_suite("bitr/HopperParam-v0", "bitr/hopper-param/train-iid-tiny-v0", "tiny") is None


def test_the_command_trains_the_named_algo_and_names_a_suite(minari_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--algo", "focal", "--dataset", TRAIN, "--out", str(out), "--wm-iterations", "2",
                 "--sac-iterations", "2", "--width", "16", "--hidden", "16", "--task-batch", "4",
                 "--context-size", "8", "--batch-per-task", "4", "--log-every", "2"]) == 0
    hint = capsys.readouterr().out.splitlines()[-1]  # the sweep's result file and name for this run
    assert hint == (f"evaluate it with: bitr evaluate --agent bitr_agent:load --checkpoint {out} --suite tiny-v1 "
                    f"--out {out}/result-tiny-v1.json --name 'focal seed 0'")
    assert torch.load(out / "agent.pt", weights_only=True)["algo"] == "focal"


def test_the_hint_names_the_factory_and_only_the_runs_family():
    """A privileged method's factory; a suite with more families than the run: only its own units."""
    cfg = from_profile("lite", algo="oracle_task", dataset="bitr/cheetah-vel/train-iid-lite-v0", seed=1)
    assert evaluation_hint("runs/o", "bitr/CheetahVel-v0", cfg, "lite") == (
        "evaluate it with: bitr evaluate --agent bitr_agent:load_privileged --checkpoint runs/o --suite lite-v1 "
        "--out runs/o/result-lite-v1.json --name 'oracle_task seed 1' --env bitr/CheetahVel-v0")


def test_every_peer_class_is_registered():
    for cls in (BITR, BITRMLPWorldModel, BITRMeanPool, FOCAL, CORRO, CSRO, UNICORN, ContextBC):
        assert cls in ALGOS.values()
