"""Training BITR on one offline meta-RL dataset (CleanRL-style: one file, config on top).

    bitr-agent train --dataset bitr/point-robot-sparse/train-iid-lite-v0 --profile quick --out runs/bitr

Phase 1 trains the task encoder and the world model together:
- InfoNCE across tasks: two context sets of the same task, collected by *different* behaviour
  policies where the data allows, must give matching z (the task term, and invariance by
  construction);
- the world model's Gaussian likelihood of (s', r) given the history and z (reconstruction);
- an adversary that predicts the behaviour policy from z, with its gradient reversed into the
  encoder (the invariance term: z should not carry who collected the context).
Phase 2 freezes them and trains SAC conditioned on z on real transitions plus 1-step rollouts
the world model imagines from real histories, with a CQL/COMBO conservative penalty.

Checkpoints every `checkpoint_every` iterations resume after a kill, exactly; the finished agent
is `out/agent.pt` (tensors only, loaded with `weights_only=True`).
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bitr_agent.agent import load_weights
from bitr_agent.model import Actor, BehaviourAdversary, Critics, TaskEncoder, WorldModel, info_nce, reverse_gradient


@dataclass
class Config:
    # data
    dataset: str = ""
    seed: int = 0
    threads: int = 1  # torch threads; more than the free cores makes small networks crawl
    # task encoder and world model (phase 1)
    z_dim: int = 8
    width: int = 64
    wm_layers: int = 2
    wm_heads: int = 4
    history: int = 8  # world-model context, in steps
    context_size: int = 64  # transitions per context set when training the encoder
    task_batch: int = 16  # tasks per meta-batch (both phases)
    windows_per_task: int = 8  # world-model histories per task per iteration
    wm_iterations: int = 1500
    wm_lr: float = 1e-3
    contrastive_weight: float = 1.0  # 0 switches the InfoNCE task term off
    temperature: float = 0.1
    reconstruction_weight: float = 1.0  # 0 keeps the world model's gradient out of the encoder
    adversary_weight: float = 0.3  # 0 switches the behaviour adversary off
    # conservative SAC on real and imagined transitions (phase 2)
    sac_iterations: int = 4000
    hidden: int = 128
    batch_per_task: int = 32
    imagined_per_task: int = 8  # 1-step world-model rollouts from real histories
    gamma: float = 0.99
    tau: float = 0.005
    lr: float = 3e-4
    cql_weight: float = 1.0
    cql_actions: int = 10
    uncertainty_weight: float = 0.0  # MOPO-style penalty on imagined rewards: lambda * model std
    # bookkeeping
    checkpoint_every: int = 500
    log_every: int = 250


PROFILES = {
    # Point-Robot-Sparse trains in a few minutes on one CPU core
    "quick": Config(batch_per_task=16, cql_actions=5, cql_weight=5.0),
    # the lite suite's families, well under an hour each on one CPU core (two seeds run side by
    # side on 2 cores); the CQL actions multiply the critic's cost, so they and the batch are small
    "lite": Config(z_dim=16, width=128, wm_iterations=5000, sac_iterations=20000, hidden=128,
                   batch_per_task=32, imagined_per_task=8, cql_weight=5.0, cql_actions=4,
                   checkpoint_every=2000, log_every=1000),
    # the paper's settings (PAPER.md), for a GPU: 2 layers, 4 heads, width 256, 10k world-model
    # iterations, meta-batch 16, 256x256 SAC, CQL weight 0.5 with 10 actions, 8-step contexts
    "paper": Config(threads=os.cpu_count() or 1, z_dim=16, width=256, wm_iterations=10000, sac_iterations=500000, hidden=256,
                    batch_per_task=256, imagined_per_task=8, cql_weight=0.5, checkpoint_every=10000,
                    log_every=5000),
}


# ----- data -----------------------------------------------------------------------------------
class TaskArrays:
    """One task's transitions in normalised units, with what the samplers need precomputed."""

    def __init__(self, task, obs_mean, obs_std, action_scale, history: int):
        self.obs = ((task.observations - obs_mean) / obs_std).astype(np.float32)
        self.next_obs = ((task.next_observations - obs_mean) / obs_std).astype(np.float32)
        self.act = (task.actions / action_scale).astype(np.float32)
        self.rew = task.rewards.astype(np.float32)
        self.done = task.terminals.astype(np.float32)
        self.behaviour = task.behaviours
        ends = task.terminals | task.timeouts
        episode = np.r_[0, np.cumsum(ends)[:-1]]
        self.prev_rew = np.where(np.r_[True, episode[1:] != episode[:-1]], 0.0, np.r_[0.0, self.rew[:-1]]).astype(np.float32)
        last = np.arange(len(self.rew)) + history - 1
        ok = last < len(self.rew)
        ok[ok] &= episode[last[ok]] == episode[ok]
        self.window_starts = np.flatnonzero(ok)  # histories that stay inside one episode
        self.rows_of = {int(b): np.flatnonzero(self.behaviour == b) for b in np.unique(self.behaviour)}


class Sampler:
    """Meta-batches as torch tensors, drawn with one numpy Generator (whose state is saved)."""

    def __init__(self, tasks: list[TaskArrays], cfg: Config, rng: np.random.Generator):
        self.tasks, self.cfg, self.rng = tasks, cfg, rng

    def task_ids(self) -> np.ndarray:
        return self.rng.choice(len(self.tasks), size=min(self.cfg.task_batch, len(self.tasks)), replace=False)

    def contexts(self, task_ids, different_from=None):
        """One context set per task, all from one behaviour policy; with `different_from`
        (the behaviours of another view), a different behaviour wherever the task has one."""
        rows, behaviours = [], []
        for i, t in enumerate(task_ids):
            options = list(self.tasks[t].rows_of)
            if different_from is not None and len(options) > 1:
                options.remove(int(different_from[i]))
            b = options[self.rng.integers(len(options))]
            rows.append(self.rng.choice(self.tasks[t].rows_of[b], size=self.cfg.context_size))
            behaviours.append(b)
        return self._stack(task_ids, rows, ("obs", "act", "rew", "next_obs")), np.array(behaviours)

    def windows(self, task_ids, n: int):
        rows = []
        for t in task_ids:
            starts = self.rng.choice(self.tasks[t].window_starts, size=n)
            rows.append(starts[:, None] + np.arange(self.cfg.history))
        return self._stack(task_ids, rows, ("obs", "prev_rew", "act", "rew", "next_obs", "done"))

    def transitions(self, task_ids, n: int):
        rows = [self.rng.integers(len(self.tasks[t].rew), size=n) for t in task_ids]
        return self._stack(task_ids, rows, ("obs", "act", "rew", "next_obs", "done"))

    def _stack(self, task_ids, rows, keys):
        return {k: torch.as_tensor(np.stack([getattr(self.tasks[t], k)[r] for t, r in zip(task_ids, rows)])) for k in keys}


def encode(encoder, context):
    return encoder(context["obs"], context["act"], context["rew"], context["next_obs"])


# ----- the learner ----------------------------------------------------------------------------
class BITR:
    """Every network and optimiser, with one update per phase."""

    def __init__(self, cfg: Config, obs_dim: int, act_dim: int, n_behaviours: int):
        self.cfg, self.act_dim = cfg, act_dim
        self.encoder = TaskEncoder(obs_dim, act_dim, cfg.z_dim, cfg.width)
        self.world_model = WorldModel(obs_dim, act_dim, cfg.z_dim, cfg.width, cfg.wm_layers, cfg.wm_heads, cfg.history)
        self.adversary = BehaviourAdversary(cfg.z_dim, n_behaviours, cfg.width)
        self.actor = Actor(obs_dim + cfg.z_dim, act_dim, cfg.hidden)
        self.critics = Critics(obs_dim + act_dim + cfg.z_dim, cfg.hidden)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.log_alpha = torch.zeros(1, requires_grad=True)
        phase1 = [*self.encoder.parameters(), *self.world_model.parameters(), *self.adversary.parameters()]
        self.wm_optimizer = torch.optim.Adam(phase1, lr=cfg.wm_lr)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=cfg.lr)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=cfg.lr)

    def modules(self) -> dict:
        return {name: getattr(self, name) for name in (
            "encoder", "world_model", "adversary", "actor", "critics", "target_critics",
            "wm_optimizer", "actor_optimizer", "critic_optimizer", "alpha_optimizer")}

    def update_representation(self, sampler: Sampler) -> dict:
        cfg = self.cfg
        tasks = sampler.task_ids()
        context_a, behaviour_a = sampler.contexts(tasks)
        context_b, _ = sampler.contexts(tasks, different_from=behaviour_a)
        z_a, z_b = encode(self.encoder, context_a), encode(self.encoder, context_b)
        contrastive = info_nce(z_a, z_b, cfg.temperature)

        windows = sampler.windows(tasks, cfg.windows_per_task)
        z_wm = z_a if cfg.reconstruction_weight > 0 else z_a.detach()
        z_windows = z_wm.repeat_interleave(cfg.windows_per_task, 0)
        flat = {k: v.flatten(0, 1) for k, v in windows.items()}
        reconstruction = self.world_model.loss(flat["obs"], flat["prev_rew"], flat["act"], flat["rew"],
                                               flat["next_obs"], flat["done"], z_windows)
        # The adversary learns to name the behaviour policy; the encoder gets the reversed gradient.
        logits = self.adversary(reverse_gradient(z_a, cfg.adversary_weight))
        adversary = F.cross_entropy(logits, torch.as_tensor(behaviour_a))
        loss = cfg.contrastive_weight * contrastive + reconstruction
        if cfg.adversary_weight > 0:
            loss = loss + adversary
        self.wm_optimizer.zero_grad()
        loss.backward()
        self.wm_optimizer.step()
        return {"contrastive": contrastive.item(), "reconstruction": reconstruction.item(), "adversary": adversary.item()}

    @torch.no_grad()
    def task_z(self, sampler: Sampler, tasks) -> torch.Tensor:
        context, _ = sampler.contexts(tasks)
        return encode(self.encoder, context)

    @torch.no_grad()
    def imagine(self, sampler: Sampler, tasks, z) -> dict:
        """1-step rollouts: real histories, the policy's action at the last step, the model's outcome."""
        cfg = self.cfg
        n = cfg.imagined_per_task
        w = {k: v.flatten(0, 1) for k, v in sampler.windows(tasks, n).items()}
        zz = z.repeat_interleave(n, 0)
        last_obs = w["obs"][:, -1]
        action, _, _ = self.actor(torch.cat([last_obs, zz], -1))
        act = w["act"].clone()
        act[:, -1] = action
        mean, log_std, done_logit = self.world_model(w["obs"], w["prev_rew"], act, zz)
        mean, std = mean[:, -1], log_std[:, -1].exp()
        sample = mean + std * torch.randn_like(std)
        reward = sample[:, -1] - cfg.uncertainty_weight * std.norm(dim=-1)
        done = (done_logit[:, -1] > 0).float()
        return {"obs": last_obs, "act": action, "rew": reward, "next_obs": last_obs + sample[:, :-1], "done": done, "z": zz}

    def update_policy(self, sampler: Sampler) -> dict:
        cfg = self.cfg
        tasks = sampler.task_ids()
        z = self.task_z(sampler, tasks)
        real = {k: v.flatten(0, 1) for k, v in sampler.transitions(tasks, cfg.batch_per_task).items()}
        real["z"] = z.repeat_interleave(cfg.batch_per_task, 0)
        batch = real
        if cfg.imagined_per_task > 0:
            imagined = self.imagine(sampler, tasks, z)
            batch = {k: torch.cat([real[k], imagined[k]]) for k in real}
        s = torch.cat([batch["obs"], batch["z"]], -1)
        s_next = torch.cat([batch["next_obs"], batch["z"]], -1)
        alpha = self.log_alpha.exp().detach()

        with torch.no_grad():
            next_action, next_log_prob, _ = self.actor(s_next)
            q_next = torch.min(*self.target_critics(torch.cat([s_next, next_action], -1))) - alpha * next_log_prob
            target = batch["rew"] + cfg.gamma * (1 - batch["done"]) * q_next
        q1, q2 = self.critics(torch.cat([s, batch["act"]], -1))
        bellman = F.mse_loss(q1, target) + F.mse_loss(q2, target)

        # Conservative penalty (CQL(H), as COMBO uses it): push Q down on actions the data does
        # not support (uniform and policy actions, on real and imagined states), up on real data.
        n, k = len(s), cfg.cql_actions
        s_rep = s.repeat_interleave(k, 0)
        uniform = torch.rand(n * k, self.act_dim) * 2 - 1
        with torch.no_grad():
            policy_action, policy_log_prob, _ = self.actor(s_rep)
        log_density_uniform = self.act_dim * np.log(0.5)
        penalty = 0.0
        for q_real, q_fn in ((q1, self.critics.q1), (q2, self.critics.q2)):
            q_uniform = q_fn(torch.cat([s_rep, uniform], -1)).view(n, k) - log_density_uniform
            q_policy = q_fn(torch.cat([s_rep, policy_action], -1)).view(n, k) - policy_log_prob.view(n, k)
            pushed_down = torch.logsumexp(torch.cat([q_uniform, q_policy], 1), 1).mean()
            penalty = penalty + pushed_down - q_real[: len(real["rew"])].mean()
        critic_loss = bellman + cfg.cql_weight * penalty
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()

        action, log_prob, _ = self.actor(s)
        actor_loss = (alpha * log_prob - torch.min(*self.critics(torch.cat([s, action], -1)))).mean()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()
        alpha_loss = -(self.log_alpha * (log_prob.detach() - self.act_dim)).mean()  # target entropy -|A|
        self.alpha_optimizer.zero_grad()
        alpha_loss.backward()
        self.alpha_optimizer.step()
        with torch.no_grad():
            for p, p_target in zip(self.critics.parameters(), self.target_critics.parameters()):
                p_target.lerp_(p, cfg.tau)
        return {"bellman": bellman.item(), "cql_penalty": penalty.item(), "actor": actor_loss.item(),
                "alpha": alpha.item(), "q": q1.mean().item()}


# ----- diagnostics ----------------------------------------------------------------------------
@torch.no_grad()
def diagnostics(learner: BITR, held_out: list[TaskArrays], cfg: Config, rng: np.random.Generator) -> dict:
    """On tasks never trained on: can z name the task, can a probe name the behaviour policy
    from z (lower = more invariant), and the world model's one-step error."""
    sampler = Sampler(held_out, dataclasses.replace(cfg, task_batch=len(held_out)), rng)
    zs, tasks, behaviours = [], [], []
    for _ in range(8):
        ids = np.arange(len(held_out))
        context, b = sampler.contexts(ids)
        zs.append(encode(learner.encoder, context))
        tasks.append(ids)
        behaviours.append(b)
    z, task, behaviour = torch.cat(zs).numpy(), np.concatenate(tasks), np.concatenate(behaviours)
    return {
        "task_id_accuracy": _nearest_centroid_accuracy(z, task),
        "behaviour_probe_accuracy": _nearest_centroid_accuracy(z, behaviour),
        "behaviour_chance": 1.0 / len(np.unique(behaviour)),
        "wm_one_step_mse": _world_model_error(learner, sampler),
    }


def _nearest_centroid_accuracy(z: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out nearest-centroid classification: how well z separates the labels."""
    correct = 0
    for i in range(len(z)):
        keep = np.arange(len(z)) != i
        classes = np.unique(labels[keep])
        centroids = np.stack([z[keep & (labels == c)].mean(0) for c in classes])
        correct += classes[np.argmin(((centroids - z[i]) ** 2).sum(1))] == labels[i]
    return float(correct / len(z))


def _world_model_error(learner: BITR, sampler: Sampler) -> float:
    ids = np.arange(len(sampler.tasks))
    z = learner.task_z(sampler, ids)
    w = {k: v.flatten(0, 1) for k, v in sampler.windows(ids, 16).items()}
    mean, _, _ = learner.world_model(w["obs"], w["prev_rew"], w["act"], z.repeat_interleave(16, 0))
    target = torch.cat([w["next_obs"] - w["obs"], w["rew"].unsqueeze(-1)], -1)
    return float(((mean - target) ** 2).mean())


# ----- checkpoints ----------------------------------------------------------------------------
def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(path: Path, learner: BITR, cfg: Config, iteration: int, rng: np.random.Generator) -> None:
    _atomic_save({
        "config": dataclasses.asdict(cfg),
        "iteration": iteration,
        "modules": {name: m.state_dict() for name, m in learner.modules().items()},
        "log_alpha": learner.log_alpha.detach().clone(),
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
    }, path)


# ----- the run --------------------------------------------------------------------------------
# What may differ between a run and its resume: a finished run can be trained for longer.
RESUMABLE_CHANGES = {"sac_iterations", "checkpoint_every", "log_every"}


def _fixed(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES}


def train(cfg: Config, out: Path, progress=True, stop_after: int | None = None) -> dict:
    """Train (or resume) and write out/agent.pt; `stop_after` ends early, as a kill would."""
    from bitr_envs import datasets

    torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    data = datasets.load(cfg.dataset)
    all_obs = np.concatenate([t.observations for t in data.tasks])
    obs_mean, obs_std = all_obs.mean(0), all_obs.std(0) + 1e-3
    import gymnasium as gym

    import bitr_envs  # noqa: F401

    space = gym.make(data.env_id).action_space
    action_scale = np.maximum(np.abs(space.low), np.abs(space.high)).astype(np.float32)
    tasks = [TaskArrays(t, obs_mean, obs_std, action_scale, cfg.history) for t in data.tasks]
    held_out = _held_out(cfg.dataset, obs_mean, obs_std, action_scale, cfg.history)

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    learner = BITR(cfg, all_obs.shape[1], space.shape[0], len(data.behaviour_names))
    iteration = 0
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists():
        state = load_weights(checkpoint)
        if _fixed(state["config"]) != _fixed(dataclasses.asdict(cfg)):
            raise ValueError(f"{checkpoint} was written with another config; use another --out or the same settings "
                             f"(only {', '.join(sorted(RESUMABLE_CHANGES))} may change).")
        if state["iteration"] > cfg.wm_iterations + cfg.sac_iterations:
            raise ValueError(f"{checkpoint} is at iteration {state['iteration']}, past this config's end: "
                             f"--sac-iterations can only grow.")
        for name, module in learner.modules().items():
            module.load_state_dict(state["modules"][name])
        with torch.no_grad():
            learner.log_alpha.copy_(state["log_alpha"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        iteration = state["iteration"]
        print(f"resumed from {checkpoint} at iteration {iteration}")
    sampler = Sampler(tasks, cfg, rng)
    # No value can exceed the largest reward's discounted sum (check_health allows ten times it).
    max_return = max(1.0, max(float(np.abs(t.rewards).max()) for t in data.tasks)) / (1 - cfg.gamma)

    total = cfg.wm_iterations + cfg.sac_iterations
    metrics_path = out / "metrics.csv"
    started = time.monotonic()
    last: dict = {}
    while iteration < total:
        if stop_after is not None and iteration >= stop_after:
            return last
        phase = "representation" if iteration < cfg.wm_iterations else "policy"
        last = learner.update_representation(sampler) if phase == "representation" else learner.update_policy(sampler)
        iteration += 1
        if iteration % cfg.log_every == 0 or iteration in (cfg.wm_iterations, total):
            row = {"iteration": iteration, "phase": phase, "seconds": round(time.monotonic() - started, 1), **last}
            if held_out and (iteration == cfg.wm_iterations or iteration == total):
                row.update(diagnostics(learner, held_out, cfg, np.random.default_rng(0)))
            _append_csv(metrics_path, row)
            if progress:
                print(f"[{iteration}/{total}] {phase}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items() if isinstance(v, float)), flush=True)
            check_health(last, phase, iteration, cfg, max_return, out)
        if iteration % cfg.checkpoint_every == 0 or iteration == total:
            save_checkpoint(checkpoint, learner, cfg, iteration, rng)
    agent = _agent_weights(learner, cfg, data, obs_mean, obs_std, action_scale, sampler)
    _atomic_save(agent, out / "agent.pt")
    return last


class TrainingFailed(RuntimeError):
    """Training went somewhere no later update recovers from; no agent.pt is written."""


def check_health(losses: dict, phase: str, iteration: int, cfg: Config, max_return: float, out: Path) -> None:
    """Stop a run whose encoder collapsed or whose critic diverged, instead of writing a useless agent."""
    where = f"{out} at iteration {iteration} ({phase} phase)"
    bad = [k for k, v in losses.items() if not math.isfinite(v)]
    if bad:
        raise TrainingFailed(f"{where}: non-finite {', '.join(bad)}. Rerun into a new --out with another "
                             f"--seed or a lower learning rate (--wm-lr / --lr).")
    chance = math.log(cfg.task_batch)  # InfoNCE when every task gets the same z
    if phase == "representation" and iteration >= cfg.wm_iterations // 5 and abs(losses["contrastive"] - chance) < 1e-3:
        raise TrainingFailed(
            f"{where}: the task encoder collapsed: every task gets the same z (InfoNCE = ln({cfg.task_batch}) = "
            f"{chance:.3f}), so no context can inform the policy. Seen when the behaviour adversary's reversed "
            f"gradient wins early (Point-Robot-Sparse, lite profile, --seed 1; --wm-lr 0.0003 or --adversary-weight 0 "
            f"avoided it there). Rerun into a new --out with one of those or another --seed.")
    if phase == "policy" and abs(losses["q"]) > 10 * max_return:
        raise TrainingFailed(
            f"{where}: the critic diverged (mean Q {losses['q']:.3g}, while no return can exceed "
            f"{max_return:.3g}). Rerun into a new --out with another --seed, a larger --cql-weight or a lower --lr.")


def _held_out(dataset_id: str, obs_mean, obs_std, action_scale, history: int):
    """The same family's test-task data, for diagnostics only (never trained on)."""
    from bitr_envs import datasets
    from bitr_envs.datasets.storage import exists

    held_out_id = dataset_id.replace("/train-", "/test-")
    if held_out_id == dataset_id or not exists(held_out_id):
        print(f"no held-out dataset {held_out_id}: diagnostics skipped", file=sys.stderr)
        return None
    return [TaskArrays(t, obs_mean, obs_std, action_scale, history) for t in datasets.load(held_out_id).tasks]


@torch.no_grad()
def _agent_weights(learner: BITR, cfg: Config, data, obs_mean, obs_std, action_scale, sampler: Sampler) -> dict:
    z_prior = torch.cat([learner.task_z(sampler, sampler.task_ids()) for _ in range(8)]).mean(0)
    return {
        "config": dataclasses.asdict(cfg),
        "env_id": data.env_id,
        "encoder": learner.encoder.state_dict(),
        "actor": learner.actor.state_dict(),
        "obs_mean": torch.as_tensor(obs_mean, dtype=torch.float32),
        "obs_std": torch.as_tensor(obs_std, dtype=torch.float32),
        "action_scale": torch.as_tensor(action_scale),
        "z_prior": z_prior,
    }


METRICS = ["iteration", "phase", "seconds", "contrastive", "reconstruction", "adversary", "bellman",
           "cql_penalty", "actor", "alpha", "q", "task_id_accuracy", "behaviour_probe_accuracy",
           "behaviour_chance", "wm_one_step_mse"]


def _append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRICS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bitr-agent", description="Train the BITR reference agent.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train", help="train on a dataset (resumes from --out/checkpoint.pt)")
    run.add_argument("--dataset", required=True, help="a train-iid dataset id, e.g. bitr/point-robot-sparse/train-iid-lite-v0")
    run.add_argument("--profile", default="quick", choices=list(PROFILES))
    run.add_argument("--out", required=True)
    run.add_argument("--seed", type=int, default=0)
    overridable = run.add_argument_group(
        "profile settings", "override one setting of --profile (the Config dataclass in bitr_agent/train.py says "
        "what each does); a finished run continues with a larger --sac-iterations")
    for field in dataclasses.fields(Config):
        if field.name not in ("dataset", "seed"):
            overridable.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=None,
                                     metavar=type(field.default).__name__.upper())
    args = parser.parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
                 if f.name not in ("dataset", "seed") and getattr(args, f.name) is not None}
    cfg = dataclasses.replace(PROFILES[args.profile], dataset=args.dataset, seed=args.seed, **overrides)
    try:
        train(cfg, Path(args.out))
    except TrainingFailed as err:
        print(f"bitr-agent train: {err}", file=sys.stderr)
        return 1
    print(f"agent written to {Path(args.out) / 'agent.pt'}; evaluate it with "
          f"`bitr evaluate --agent bitr_agent:load --checkpoint {args.out} --suite lite --out {args.out}/result.json`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
