"""Task-conditioned SAC: the behaviour-policy trainer for the MuJoCo families (CleanRL style).

One "oracle" policy for all 30 `train` tasks of an env id (and, with --extra-tasks, more tasks
from the same distribution): the actor and the critics see the observation concatenated with
`task_features(task)`. N envs run in a SyncVectorEnv, each drawing a new random task of the
pool at every episode start.

    python datasets/train_sac.py --env bitr/CheetahVel-v0 --steps 500000 \
        --out bitr_envs/datasets/cards/policies/cheetah-vel
    python datasets/train_sac.py ... --resume        # continue from --out/checkpoint/ after a kill

Writes into --out:
- step_<N>.npz: the actor after N env steps (plain arrays, no pickle; load with
  `bitr_envs.datasets.behaviours.MLPPolicy.load`), at the fractions `snapshot_fractions` of --steps.
- progress.csv: one row per snapshot (columns explained in `PROGRESS_COLUMNS`).
- checkpoint/state.pt: the full training state (git-ignored), every `checkpoint_every_s` seconds,
  at the end, and on SIGTERM/SIGINT. A resumed run keeps the replay buffer, networks, optimisers,
  RNGs and counters, and starts fresh episodes (the episodes in progress at the kill are cut).

Speed on one core (our 2-core test machine, batch 256, 256x256 nets): ~120
plain SAC updates/s; fused Adam +5%, both critics as one batched ensemble +4%, torch.compile
within noise (not used), the actor/alpha updated every 2nd critic update (TD3-style delay) +30%:
~150 critic updates/s. The simulator is ~150x cheaper than an update, so a fixed budget of
updates is best spent on fresh data: update-to-data ratio 1.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core for training: set before numpy/torch load

import argparse
import csv
import dataclasses
import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn

import bitr_envs  # noqa: F401  (registers the bitr/ ids)
from bitr_agent.model import EnsembleLinear, TanhGaussianActor
from bitr_agent.utils import add_dataclass_flags, atomic_save
from bitr_envs.core import N_TRAIN
from bitr_envs.registry import entry


@dataclass
class Args:
    env: str = "bitr/CheetahVel-v0"
    """the bitr env id (all 30 of its `train` tasks are trained at once)"""
    steps: int = 500_000
    """total env steps, summed over the vector envs"""
    out: str = "bitr_envs/datasets/cards/policies/cheetah-vel"
    """output directory: snapshots, progress.csv, checkpoint/"""
    resume: bool = False
    """continue from --out/checkpoint/state.pt (starts fresh if there is none)"""
    seed: int = 1
    """seeds torch, numpy and the envs' resets"""
    num_envs: int = 10
    """parallel envs (SyncVectorEnv, one process)"""
    buffer_size: int = 1_000_000
    """replay capacity (capped at --steps)"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """step of the target critics towards the critics, per update"""
    batch_size: int = 256
    """transitions per update, drawn from the replay buffer"""
    learning_starts: int = 10_000
    """env steps of uniform random actions before the first update"""
    updates_per_step: float = 1.0
    """critic updates per env step (update-to-data ratio)"""
    policy_frequency: int = 2
    """actor and alpha are updated once every `policy_frequency` critic updates"""
    policy_lr: float = 3e-4
    """learning rate of the actor"""
    q_lr: float = 1e-3
    """learning rate of the critics and of the entropy temperature"""
    hidden: int = 256
    """width of the two hidden layers of every MLP"""
    target_entropy_scale: float = 1.0
    """target entropy = -scale * action_dim (in the [-1, 1] action space)"""
    critic_layer_norm: bool = False
    """LayerNorm (no affine) after each hidden layer of the critics: steadier TD targets"""
    extra_tasks: int = 0
    """train on this many more tasks, drawn afresh from the family's in-distribution sampler
    (never the benchmark's test tasks), besides the 30 train tasks: a policy conditioned on
    many task parameters (Hopper/Walker-Param: 65 log-scales) does not generalise from 30"""
    snapshot_fractions: tuple[float, ...] = (
        0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0
    )
    """fractions of --steps at which the actor is evaluated on the test split and saved"""
    eval_seed: int = 10_000
    """test task i is evaluated from reset(seed=eval_seed + i): every snapshot sees the same starts"""
    checkpoint_every_s: float = 300.0
    """wall-clock seconds between checkpoints (also written at the end and on SIGTERM/SIGINT)"""
    log_every_s: float = 60.0
    """wall-clock seconds between progress lines"""


# Fields that may differ between a run and its --resume (everything else must match).
# extra_tasks may only grow: the pool keeps its first tasks, so stored task indices stay valid.
RESUMABLE_CHANGES = {"steps", "resume", "checkpoint_every_s", "log_every_s", "extra_tasks"}

PROGRESS_COLUMNS = {
    "step": "env steps so far (summed over the vector envs); the snapshot is step_<step>.npz",
    "wall_seconds": "training wall-clock seconds so far (summed over resumed runs)",
    "updates": "critic updates so far",
    "train_return_mean": "mean return of the training episodes (stochastic actor, random train "
    "tasks) finished since the previous row; empty if none",
    "test_return_mean": "deterministic actor (tanh of the mean), 1 episode on each of the 10 "
    "test tasks, mean of the returns",
    "test_return_min": "min over the test tasks",
    "test_return_max": "max over the test tasks",
    "test_returns": "the 10 returns, test tasks 0..9, separated by spaces",
    "snapshot": "file name of the actor saved at this step",
}

# ----- networks ---------------------------------------------------------------------------------
# The actor's snapshot format (fc1, fc2, fc_mean, fc_logstd, action_scale, action_bias; read in
# numpy by bitr_envs.datasets.behaviours.MLPPolicy) is defined once, in bitr_agent.model.
Actor = TanhGaussianActor


class TwinQ(nn.Module):
    """The two critics Q1, Q2 as one ensemble: returns (2, B)."""

    def __init__(self, in_dim: int, act_dim: int, hidden: int, layer_norm: bool = False):
        super().__init__()

        # LayerNorm without affine parameters, so the two critics share nothing; without it the
        # layers keep the indices that checkpoints from before the option was added use
        norm = [nn.LayerNorm(hidden, elementwise_affine=False)] if layer_norm else []
        self.net = nn.Sequential(
            EnsembleLinear(2, in_dim + act_dim, hidden), *norm, nn.ReLU(),
            EnsembleLinear(2, hidden, hidden), *norm, nn.ReLU(),
            EnsembleLinear(2, hidden, 1),
        )

    def forward(self, x, action):
        return self.net(torch.cat([x, action], -1).expand(2, -1, -1)).squeeze(-1)


def actor_arrays(actor: Actor, obs_dim: int) -> dict[str, np.ndarray]:
    """The actor as plain arrays (a snapshot): its state dict in float32, plus obs_dim."""
    return actor.snapshot_arrays(obs_dim)


# ----- replay buffer ----------------------------------------------------------------------------
class ReplayBuffer:
    """Transitions as numpy arrays; the task is stored as its train-task index."""

    FIELDS = ("obs", "actions", "rewards", "next_obs", "terminations", "task_ids")

    def __init__(self, capacity: int, obs_dim: int, act_dim: int):
        self.capacity, self.size, self.pos = capacity, 0, 0
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.actions = np.zeros((capacity, act_dim), np.float32)
        self.rewards = np.zeros(capacity, np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.terminations = np.zeros(capacity, np.float32)
        self.task_ids = np.zeros(capacity, np.int64)

    def add(self, **batch):
        n = len(batch["rewards"])
        idx = (self.pos + np.arange(n)) % self.capacity
        for name in self.FIELDS:
            getattr(self, name)[idx] = batch[name]
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, rng: np.random.Generator, batch_size: int, features: np.ndarray):
        i = rng.integers(0, self.size, batch_size)
        task = features[self.task_ids[i]]
        x = np.concatenate([self.obs[i], task], 1)
        next_x = np.concatenate([self.next_obs[i], task], 1)
        return tuple(
            torch.from_numpy(a)
            for a in (x, self.actions[i], self.rewards[i], next_x, self.terminations[i])
        )

    def state(self) -> dict:
        arrays = {n: torch.from_numpy(getattr(self, n)[: self.size].copy()) for n in self.FIELDS}
        return {"size": self.size, "pos": self.pos, "arrays": arrays}

    def load_state(self, state: dict):
        if state["size"] > self.capacity:
            raise ValueError(f"checkpoint buffer holds {state['size']} > capacity {self.capacity}")
        self.size = state["size"]
        # a full buffer resumed with a larger capacity (longer --steps) fills the new slots first
        self.pos = state["pos"] if self.size == self.capacity else self.size % self.capacity
        for name in self.FIELDS:
            getattr(self, name)[: self.size] = state["arrays"][name].numpy()


# ----- envs -------------------------------------------------------------------------------------
def training_tasks(env_class, extra: int) -> tuple:
    """The 30 train tasks, then `extra` in-distribution tasks from fresh draws of the sampler.

    `draw_tasks(rng)` gives 40 in-distribution tasks (train + test) per call; calls k = 1, 2, ...
    use seeds task_seed + 1000 * k, so the benchmark's own draw (seed task_seed) never recurs.
    """
    tasks = list(env_class.split_tasks("train"))
    k = 0
    while len(tasks) < N_TRAIN + extra:
        k += 1
        drawn = env_class.draw_tasks(np.random.default_rng(env_class.task_seed + 1000 * k))
        tasks += drawn["train"] + drawn["test"]
    return tuple(tasks[: N_TRAIN + extra])


class RandomTaskEachEpisode(gym.Wrapper):
    """Every reset (including the vector env's autoresets) draws a random task of `tasks`.

    The env's own task list is replaced by `tasks` (the trainer's pool), so `info["task_id"]`
    indexes the pool.
    """

    def __init__(self, env, tasks: tuple):
        super().__init__(env)
        self.env.unwrapped.tasks = tasks

    def reset(self, *, seed=None, options=None):
        return self.env.reset(seed=seed, options={"task": "random", **(options or {})})


def make_train_envs(args: Args, tasks: tuple) -> gym.vector.SyncVectorEnv:
    fns = [
        lambda: RandomTaskEachEpisode(gym.make(args.env, split="train"), tasks)
        for _ in range(args.num_envs)
    ]
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def evaluate(actor: Actor, envs: list, features: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic actor, one episode on each test task (env i runs task i), in lockstep."""
    obs = np.stack([env.reset(seed=seed + i, options={"task": i})[0] for i, env in enumerate(envs)])
    returns = np.zeros(len(envs))
    running = np.ones(len(envs), bool)
    scale, bias = actor.action_scale.numpy(), actor.action_bias.numpy()
    while running.any():
        with torch.no_grad():
            x = torch.from_numpy(np.concatenate([obs, features], 1).astype(np.float32))
            actions = actor.deterministic(x).numpy() * scale + bias
        for i in np.flatnonzero(running):
            obs[i], reward, terminated, truncated, _ = envs[i].step(actions[i])
            returns[i] += reward
            running[i] = not (terminated or truncated)
    return returns


# ----- checkpoints ------------------------------------------------------------------------------
def json_args(args: Args) -> dict:
    """The settings as stored in a checkpoint (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(args).items()}


def parse_args(argv=None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataclass_flags(parser, Args, underscore_aliases=True)  # bools: --flag / --no-flag
    args = Args(**vars(parser.parse_args(argv)))
    args.snapshot_fractions = tuple(sorted(args.snapshot_fractions))
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    ckpt_path = out / "checkpoint" / "state.pt"
    progress_path = out / "progress.csv"
    if ckpt_path.exists() and not args.resume:
        sys.exit(f"{ckpt_path} exists: pass --resume to continue that run, or delete {out} first.")
    (out / "checkpoint").mkdir(parents=True, exist_ok=True)

    # ----- setup
    env_class = entry(args.env).env_class
    tasks = training_tasks(env_class, args.extra_tasks)
    train_features = np.stack([env_class.task_features(p) for p in tasks]).astype(np.float32)
    test_features = np.stack(
        [env_class.task_features(p) for p in env_class.split_tasks("test")]
    ).astype(np.float32)
    envs = make_train_envs(args, tasks)
    eval_envs = [gym.make(args.env, split="test") for _ in range(len(test_features))]
    space = envs.single_action_space
    obs_dim, act_dim = envs.single_observation_space.shape[0], space.shape[0]
    action_scale = ((space.high - space.low) / 2).astype(np.float32)
    action_bias = ((space.high + space.low) / 2).astype(np.float32)
    in_dim = obs_dim + train_features.shape[1]

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    actor = Actor(in_dim, act_dim, args.hidden, action_scale, action_bias)
    qf = TwinQ(in_dim, act_dim, args.hidden, args.critic_layer_norm)
    qf_target = TwinQ(in_dim, act_dim, args.hidden, args.critic_layer_norm)
    qf_target.load_state_dict(qf.state_dict())
    qf_target.requires_grad_(False)
    q_optimizer = torch.optim.Adam(qf.parameters(), lr=args.q_lr, fused=True)
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.policy_lr, fused=True)
    target_entropy = -args.target_entropy_scale * act_dim
    log_alpha = torch.zeros(1, requires_grad=True)
    alpha_optimizer = torch.optim.Adam([log_alpha], lr=args.q_lr)
    rb = ReplayBuffer(min(args.buffer_size, args.steps), obs_dim, act_dim)
    global_step, updates, updates_due, wall_before = 0, 0, 0.0, 0.0

    if args.resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=True)
        # A setting added after the checkpoint was written counts as its default there.
        saved = {**json_args(Args()), **ckpt["args"]}
        changed = {
            k: (saved[k], v)
            for k, v in json_args(args).items()
            if k not in RESUMABLE_CHANGES and saved[k] != v
        }
        if changed:
            sys.exit(f"--resume with different settings (checkpoint, now): {changed}")
        if args.extra_tasks < saved["extra_tasks"]:
            sys.exit(f"--resume with --extra-tasks {args.extra_tasks}: the checkpoint trained on "
                     f"{saved['extra_tasks']}; the pool may grow, not shrink.")
        actor.load_state_dict(ckpt["actor"])
        qf.load_state_dict(ckpt["qf"])
        qf_target.load_state_dict(ckpt["qf_target"])
        with torch.no_grad():
            log_alpha.copy_(ckpt["log_alpha"])
        q_optimizer.load_state_dict(ckpt["q_optimizer"])
        actor_optimizer.load_state_dict(ckpt["actor_optimizer"])
        alpha_optimizer.load_state_dict(ckpt["alpha_optimizer"])
        rb.load_state(ckpt["buffer"])
        torch.set_rng_state(ckpt["torch_rng"])
        rng.bit_generator.state = json.loads(ckpt["numpy_rng"])
        global_step, updates = ckpt["global_step"], ckpt["updates"]
        updates_due, wall_before = ckpt["updates_due"], ckpt["wall_seconds"]
        # Drop progress rows written after the checkpoint: they will be redone.
        if progress_path.exists():
            with open(progress_path) as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= global_step]
            with open(progress_path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(PROGRESS_COLUMNS))
                writer.writeheader()
                writer.writerows(rows)
        print(f"resumed from {ckpt_path} at step {global_step} ({updates} updates)", flush=True)
    else:
        if args.resume:
            print(f"--resume: no checkpoint at {ckpt_path}, starting a new run", flush=True)
        with open(progress_path, "w", newline="") as f:
            csv.DictWriter(f, fieldnames=list(PROGRESS_COLUMNS)).writeheader()
    print(f"args: {dataclasses.asdict(args)}", flush=True)

    t_start = time.time()

    def wall_seconds():
        return wall_before + time.time() - t_start

    def save_checkpoint():
        state = {
            "args": json_args(args),
            "global_step": global_step,
            "updates": updates,
            "updates_due": updates_due,
            "wall_seconds": wall_seconds(),
            "actor": actor.state_dict(),
            "qf": qf.state_dict(),
            "qf_target": qf_target.state_dict(),
            "log_alpha": log_alpha.detach().clone(),
            "q_optimizer": q_optimizer.state_dict(),
            "actor_optimizer": actor_optimizer.state_dict(),
            "alpha_optimizer": alpha_optimizer.state_dict(),
            "buffer": rb.state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": json.dumps(rng.bit_generator.state),
        }
        atomic_save(state, ckpt_path)

    stop = []  # SIGTERM / SIGINT: write a checkpoint and exit
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.append(signum))

    # ----- one SAC update
    def update(update_actor: bool):
        x, actions, rewards, next_x, terminations = rb.sample(rng, args.batch_size, train_features)
        alpha = log_alpha.exp().detach()
        with torch.no_grad():
            next_actions, next_log_prob = actor.sample(next_x)
            next_q = qf_target(next_x, next_actions).min(0).values - alpha * next_log_prob
            target = rewards + args.gamma * (1 - terminations) * next_q
        qf_loss = ((qf(x, actions) - target) ** 2).mean(1).sum()  # MSE of Q1 + MSE of Q2
        q_optimizer.zero_grad()
        qf_loss.backward()
        q_optimizer.step()
        losses = {"qf_loss": qf_loss.item()}

        if update_actor:
            qf.requires_grad_(False)  # no critic weight gradients in the actor's backward pass
            pi, log_prob = actor.sample(x)
            actor_loss = (alpha * log_prob - qf(x, pi).min(0).values).mean()
            actor_optimizer.zero_grad()
            actor_loss.backward()
            actor_optimizer.step()
            qf.requires_grad_(True)
            alpha_loss = (-log_alpha.exp() * (log_prob.detach() + target_entropy)).mean()
            alpha_optimizer.zero_grad()
            alpha_loss.backward()
            alpha_optimizer.step()
            losses.update(actor_loss=actor_loss.item(), entropy=-log_prob.mean().item())

        with torch.no_grad():
            torch._foreach_lerp_(list(qf_target.parameters()), list(qf.parameters()), args.tau)
        return losses

    # ----- the loop
    snapshot_steps = [round(f * args.steps) for f in args.snapshot_fractions]
    snapshot_steps = [s for s in snapshot_steps if s > global_step]  # done before a resume
    obs, infos = envs.reset(seed=args.seed + global_step)  # a resumed run starts new episodes
    task_ids = infos["task_id"].copy()
    episode_returns = np.zeros(args.num_envs)
    finished_returns, recent_returns = [], []
    last_log, last_ckpt = time.time(), time.time()
    log_updates, losses = updates, {}

    while global_step < args.steps and not stop:
        x = np.concatenate([obs, train_features[task_ids]], 1).astype(np.float32)
        if global_step < args.learning_starts:
            actions = rng.uniform(-1, 1, (args.num_envs, act_dim)).astype(np.float32)
        else:
            with torch.no_grad():
                actions = actor.sample(torch.from_numpy(x))[0].numpy()
        next_obs, rewards, terminations, truncations, infos = envs.step(
            actions * action_scale + action_bias
        )
        real_next_obs = next_obs.copy()
        for i in np.flatnonzero(terminations | truncations):
            real_next_obs[i] = infos["final_obs"][i]
        rb.add(obs=obs, actions=actions, rewards=rewards, next_obs=real_next_obs,
               terminations=terminations, task_ids=task_ids)
        episode_returns += rewards
        for i in np.flatnonzero(terminations | truncations):
            finished_returns.append(episode_returns[i])
            recent_returns = (recent_returns + [episode_returns[i]])[-50:]
            episode_returns[i] = 0.0
        obs, task_ids = next_obs, infos["task_id"].copy()
        global_step += args.num_envs

        if global_step >= args.learning_starts:
            updates_due += args.updates_per_step * args.num_envs
            while updates_due >= 1:
                losses = update(updates % args.policy_frequency == 0)
                updates += 1
                updates_due -= 1

        if snapshot_steps and global_step >= snapshot_steps[0]:
            while snapshot_steps and global_step >= snapshot_steps[0]:
                snapshot_steps.pop(0)
            name = f"step_{global_step}.npz"
            atomic_save(actor_arrays(actor, obs_dim), out / name, lambda f, a: np.savez(f, **a))
            test_returns = evaluate(actor, eval_envs, test_features, args.eval_seed)
            row = {
                "step": global_step,
                "wall_seconds": round(wall_seconds(), 1),
                "updates": updates,
                "train_return_mean": round(float(np.mean(finished_returns)), 2) if finished_returns else "",
                "test_return_mean": round(float(test_returns.mean()), 2),
                "test_return_min": round(float(test_returns.min()), 2),
                "test_return_max": round(float(test_returns.max()), 2),
                "test_returns": " ".join(f"{r:.2f}" for r in test_returns),
                "snapshot": name,
            }
            finished_returns = []
            with open(progress_path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=list(PROGRESS_COLUMNS)).writerow(row)
            print(f"snapshot {name}: test return {row['test_return_mean']} "
                  f"[{row['test_return_min']}, {row['test_return_max']}]", flush=True)

        now = time.time()
        if now - last_log >= args.log_every_s:
            ups = (updates - log_updates) / (now - last_log)
            train_ret = f"{np.mean(recent_returns):.1f}" if recent_returns else "-"
            loss_text = " ".join(f"{k} {v:.3g}" for k, v in losses.items())
            print(f"step {global_step} | {wall_seconds():.0f}s | {ups:.1f} updates/s | "
                  f"train return (last 50 eps) {train_ret} | alpha {log_alpha.exp().item():.3g} | "
                  f"{loss_text}", flush=True)
            last_log, log_updates = now, updates
        if now - last_ckpt >= args.checkpoint_every_s:
            save_checkpoint()
            last_ckpt = time.time()

    save_checkpoint()
    envs.close()
    if stop:
        print(f"signal {stop[0]}: checkpoint written at step {global_step}; rerun with --resume",
              flush=True)
        sys.exit(128 + stop[0])
    print(f"done: {global_step} steps, {updates} updates, {wall_seconds():.0f}s", flush=True)


if __name__ == "__main__":
    main()
