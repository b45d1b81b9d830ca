"""Training any method of the harness on one offline meta-RL dataset: the config and its
profiles, the run (phases, exact resume, metrics, diagnostics, health checks, the agent file)
and the `bitr-agent` command. What a method changes lives in its own file (`bitr_agent/methods/`).

    bitr-agent train --algo bitr --dataset bitr/point-robot-sparse/train-iid-lite-v0 --profile quick --out runs/bitr

Phase 1 (`wm_iterations` updates) trains the method's task encoder (and, for BITR, its world
model and behaviour adversary); phase 2 (`sac_iterations`) freezes them and trains the shared
SAC+CQL learner conditioned on z (on real transitions and, where the method imagines, 1-step
model rollouts). Checkpoints every `checkpoint_every` iterations resume after a kill, exactly;
the finished agent is `out/agent.pt` (tensors only, loaded with `weights_only=True`).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bitr_agent.agent import load_weights
from bitr_agent.data import Sampler, TaskArrays
from bitr_agent.learner import Method
from bitr_agent.methods import ALGOS, method
from bitr_agent.utils import add_dataclass_flags, atomic_save, set_fields
from bitr_envs.datasets.ids import env_slug
from bitr_envs.files import atomic_write, write_json_atomic
from bitr_envs.registry import ENVS


@dataclass
class Config:
    algo: str = "bitr"  # a name of bitr_agent.methods.ALGOS
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
    adversary_ramp: bool = False  # DANN's schedule: the weight ramps from 0 over phase 1
    # BITR's z on the unit sphere. InfoNCE scores only z's direction, so without this nothing
    # bounds its norm, and the adversary's reversed gradient can grow it without limit.
    unit_z: bool = False
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
    # the peers' settings (their files say what each does)
    corro_negatives: int = 16
    corro_relabel: str = "model"  # "model" (learned across tasks) or "noise" (reward noise)
    csro_focal_weight: float = 10.0
    club_weight: float = 10.0
    unicorn_beta: float = -1.0  # negative: by family
    mlp_wm_members: int = 5  # bitr-mlp-wm's ensemble
    # bookkeeping
    checkpoint_every: int = 500
    log_every: int = 250


PROFILES = {
    # Point-Robot-Sparse trains in a few minutes on one CPU core
    "quick": Config(batch_per_task=16, cql_actions=5, cql_weight=5.0),
    # the lite suite's families, under an hour each on one CPU core (two runs side by side on 2
    # cores); the CQL actions multiply the critic's cost, so they and the batch are small.
    # 40k policy updates: at 20k the policy had not learned to use z between the training
    # tasks (Cheetah-Vel seed 1: 47 -> 84 offline-iid from 20k to 40k). The ramped adversary:
    # at full weight from the start it collapsed the encoder on Point-Robot-Sparse seed 1.
    # Unit z: with the ramp, seed 2 still collapsed (||z|| 0.8 -> 6.5e6 in 100 iterations).
    "lite": Config(z_dim=16, width=128, wm_iterations=5000, sac_iterations=40000, hidden=128,
                   batch_per_task=32, imagined_per_task=8, cql_weight=5.0, cql_actions=4,
                   adversary_ramp=True, unit_z=True, checkpoint_every=2000, log_every=1000),
    # the BITR paper's settings (its public code), for a GPU: 2 layers, 4 heads, width 256, 10k world-model
    # iterations, meta-batch 16, 256x256 SAC, CQL weight 0.5 with 10 actions, 8-step contexts
    "paper": Config(threads=os.cpu_count() or 1, z_dim=16, width=256, wm_iterations=10000, sac_iterations=500000, hidden=256,
                    batch_per_task=256, imagined_per_task=8, cql_weight=0.5, adversary_ramp=True, unit_z=True,
                    checkpoint_every=10000, log_every=5000),
}


# ----- diagnostics ----------------------------------------------------------------------------
@torch.no_grad()
def diagnostics(learner: Method, held_out: list[TaskArrays], cfg: Config, rng: np.random.Generator) -> dict:
    """On tasks never trained on: can z name the task, can a probe name the behaviour policy
    from z (lower = more invariant), and the world model's one-step error (if it has one)."""
    sampler = Sampler(held_out, dataclasses.replace(cfg, task_batch=len(held_out)), rng)
    zs, tasks, behaviours = [], [], []
    for _ in range(8):
        ids = np.arange(len(held_out))
        context, b = sampler.contexts(ids)
        zs.append(learner.z_of(context, ids, sampler))
        tasks.append(ids)
        behaviours.append(b)
    z, task, behaviour = torch.cat(zs).numpy(), np.concatenate(tasks), np.concatenate(behaviours)
    out = {
        "task_id_accuracy": _nearest_centroid_accuracy(z, task),
        "behaviour_probe_accuracy": _nearest_centroid_accuracy(z, behaviour),
        "behaviour_chance": 1.0 / len(np.unique(behaviour)),
    }
    error = learner.world_model_error(sampler)
    if error is not None:
        out["wm_one_step_mse"] = error
    return out


def _nearest_centroid_accuracy(z: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out nearest-centroid classification: how well z separates the labels."""
    correct = 0
    for i in range(len(z)):
        keep = np.arange(len(z)) != i
        classes = np.unique(labels[keep])
        centroids = np.stack([z[keep & (labels == c)].mean(0) for c in classes])
        correct += classes[np.argmin(((centroids - z[i]) ** 2).sum(1))] == labels[i]
    return float(correct / len(z))


# ----- checkpoints ----------------------------------------------------------------------------
def save_checkpoint(path: Path, learner: Method, cfg: Config, iteration: int, rng: np.random.Generator,
                    seconds: float) -> None:
    atomic_save({
        "config": dataclasses.asdict(cfg),
        "iteration": iteration,
        "seconds": seconds,  # training wall time so far, carried over a resume
        "modules": {name: m.state_dict() for name, m in learner.modules().items()},
        "log_alpha": learner.log_alpha.detach().clone(),
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
    }, path)


# ----- the run --------------------------------------------------------------------------------
# What may differ between a run and its resume: a finished run can be trained for longer.
RESUMABLE_CHANGES = {"sac_iterations", "checkpoint_every", "log_every"}


def _fixed(config: dict) -> dict:
    config = {**dataclasses.asdict(Config()), **config}  # settings added after a checkpoint: their defaults
    return {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES and k in _FIELDS}


_FIELDS = {f.name for f in dataclasses.fields(Config)}


def resolve(cfg: Config) -> Config:
    """The config a run uses: the algo's fixed settings (its ablation) applied."""
    return dataclasses.replace(cfg, **method(cfg.algo).defaults)


class RunFolderError(ValueError):
    """--out cannot be trained into as asked (another config's checkpoint, a finished run)."""


def train(cfg: Config, out: Path, progress=True, stop_after: int | None = None, restart: bool = False) -> dict:
    """Train (or resume) and write out/agent.pt; `stop_after` ends early, as a kill would.
    `restart` trains a finished run without a checkpoint (a committed one) again from scratch."""
    from bitr_envs import datasets
    from bitr_envs.registry import entry

    cfg = resolve(cfg)
    algo = method(cfg.algo)
    torch.set_num_threads(cfg.threads)
    checkpoint = out / "checkpoint.pt"
    if (out / "agent.pt").exists() and not checkpoint.exists() and not restart:
        raise RunFolderError(f"{out} holds a finished run (agent.pt) and no checkpoint.pt to continue it from: "
                             "training would replace its agent and metrics. Use another --out, or --restart to "
                             "train it again from scratch.")
    out.mkdir(parents=True, exist_ok=True)
    data = datasets.load(cfg.dataset)
    all_obs = np.concatenate([t.observations for t in data.tasks])
    obs_mean, obs_std = all_obs.mean(0), all_obs.std(0) + 1e-3
    import gymnasium as gym

    import bitr_envs  # noqa: F401

    space = gym.make(data.env_id).action_space
    action_scale = np.maximum(np.abs(space.low), np.abs(space.high)).astype(np.float32)
    env_class = entry(data.env_id).env_class
    features = _features(env_class, data.split, len(data.tasks))
    tasks = [TaskArrays(t, obs_mean, obs_std, action_scale, cfg.history, f) for t, f in zip(data.tasks, features)]
    held_out = _held_out(cfg.dataset, obs_mean, obs_std, action_scale, cfg.history, env_class)

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    learner = algo(cfg, all_obs.shape[1], space.shape[0], len(data.behaviour_names), len(data.tasks),
                   task_dim=len(features[0]))
    iteration, elapsed = 0, 0.0
    if checkpoint.exists():
        state = load_weights(checkpoint)
        if _fixed(state["config"]) != _fixed(dataclasses.asdict(cfg)):
            raise RunFolderError(f"{checkpoint} was written with another config; use another --out or the same settings "
                             f"(only {', '.join(sorted(RESUMABLE_CHANGES))} may change).")
        if state["iteration"] > cfg.wm_iterations + cfg.sac_iterations:
            raise RunFolderError(f"{checkpoint} is at iteration {state['iteration']}, past this config's end: "
                             f"--sac-iterations can only grow.")
        for name, module in learner.modules().items():
            module.load_state_dict(state["modules"][name])
        with torch.no_grad():
            learner.log_alpha.copy_(state["log_alpha"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        iteration = state["iteration"]
        elapsed = _truncate_metrics(out / "metrics.csv", iteration, state.get("seconds"))
        print(f"resumed from {checkpoint} at iteration {iteration}")
    else:  # a run killed before its first checkpoint starts over, and so do its metrics
        (out / "metrics.csv").unlink(missing_ok=True)
    sampler = Sampler(tasks, cfg, rng)
    # No value can exceed the largest reward's discounted sum (check_health allows ten times it).
    max_return = max(1.0, max(float(np.abs(t.rewards).max()) for t in data.tasks)) / (1 - cfg.gamma)

    # a method without a representation phase spends the same budget: its policy phase starts at 0
    phase1 = cfg.wm_iterations if algo.representation else 0
    total = cfg.wm_iterations + cfg.sac_iterations
    columns = metric_columns(algo)
    metrics_path = out / "metrics.csv"
    started = time.monotonic() - elapsed  # "seconds" counts the work kept, over every process of the run
    last: dict = {}
    while iteration < total:
        if stop_after is not None and iteration >= stop_after:
            return last
        if iteration < phase1:
            phase = "representation"
            last = learner.update_representation(sampler, progress=iteration / phase1)
        else:
            phase = "policy"
            last = learner.update_policy(sampler)
        iteration += 1
        if iteration % cfg.log_every == 0 or iteration in (phase1, total):
            row = {"iteration": iteration, "phase": phase, "seconds": round(time.monotonic() - started, 1), **last}
            if held_out and (iteration == phase1 or iteration == total):
                row.update(diagnostics(learner, held_out, cfg, np.random.default_rng(0)))
            _append_csv(metrics_path, row, columns)
            if progress:
                print(f"[{iteration}/{total}] {phase}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items() if isinstance(v, float)), flush=True)
            check_health(last, phase, iteration, cfg, max_return, out)
        if iteration % cfg.checkpoint_every == 0 or iteration == total:
            save_checkpoint(checkpoint, learner, cfg, iteration, rng, time.monotonic() - started)
    agent = _agent_weights(learner, cfg, data, obs_mean, obs_std, action_scale, sampler)
    atomic_save(agent, out / "agent.pt")
    return last


class TrainingFailed(RuntimeError):
    """Training went somewhere no later update recovers from; no agent.pt is written."""


def check_health(losses: dict, phase: str, iteration: int, cfg: Config, max_return: float, out: Path) -> None:
    """Stop a run whose encoder collapsed or whose critic diverged, instead of writing a useless agent.
    A critic without the conservative penalty (cql_weight 0, the `bitr-no-cql` ablation) is expected to
    overestimate on offline data: that is what the ablation measures, so it trains on (its q is logged)."""
    where = f"{out} at iteration {iteration} ({phase} phase)"
    bad = [k for k, v in losses.items() if not math.isfinite(v)]
    if bad:
        raise TrainingFailed(f"{where}: non-finite {', '.join(bad)}. Rerun into a new --out with another "
                             f"--seed or a lower learning rate (--wm-lr / --lr).")
    chance = math.log(cfg.task_batch)  # InfoNCE when every task gets the same z
    if (phase == "representation" and "contrastive" in losses and iteration >= cfg.wm_iterations // 5
            and abs(losses["contrastive"] - chance) < 1e-3):
        raise TrainingFailed(
            f"{where}: the task encoder collapsed: every task gets the same z (InfoNCE = ln({cfg.task_batch}) = "
            f"{chance:.3f}), so no context can inform the policy. Seen when the behaviour adversary's reversed "
            f"gradient grew z's norm without bound (Point-Robot-Sparse, --no-unit-z); --unit-z, the lite and paper "
            f"profiles' setting, keeps z on the unit sphere. Rerun into a new --out with --unit-z, "
            f"--adversary-weight 0 or another --seed.")
    if phase == "policy" and cfg.cql_weight > 0 and "q" in losses and abs(losses["q"]) > 10 * max_return:
        raise TrainingFailed(
            f"{where}: the critic diverged (mean Q {losses['q']:.3g}, while no return can exceed "
            f"{max_return:.3g}). Rerun into a new --out with another --seed, a larger --cql-weight or a lower --lr.")


def _features(env_class, split: str, n: int) -> list:
    """Each task's own parameters as a vector (only the privileged ceiling trains on them)."""
    return [np.asarray(env_class.task_features(p), np.float32) for p in env_class.split_tasks(split)][:n]


def _held_out(dataset_id: str, obs_mean, obs_std, action_scale, history: int, env_class):
    """The same family's test-task data, for diagnostics only (never trained on)."""
    from bitr_envs import datasets
    from bitr_envs.datasets.ids import DatasetId
    from bitr_envs.datasets.storage import exists

    held_out_id = str(DatasetId.parse(dataset_id).replace(split="test"))
    if held_out_id == dataset_id or not exists(held_out_id):
        print(f"no held-out dataset {held_out_id}: diagnostics skipped", file=sys.stderr)
        return None
    data = datasets.load(held_out_id)
    features = _features(env_class, data.split, len(data.tasks))
    return [TaskArrays(t, obs_mean, obs_std, action_scale, history, f) for t, f in zip(data.tasks, features)]


@torch.no_grad()
def _agent_weights(learner: Method, cfg: Config, data, obs_mean, obs_std, action_scale, sampler: Sampler) -> dict:
    return {
        "algo": cfg.algo,
        "config": dataclasses.asdict(cfg),
        "env_id": data.env_id,
        **learner.export(),
        "actor": learner.actor.state_dict(),
        "obs_mean": torch.as_tensor(obs_mean, dtype=torch.float32),
        "obs_std": torch.as_tensor(obs_std, dtype=torch.float32),
        "action_scale": torch.as_tensor(action_scale),
        "z_prior": learner.z_prior(sampler),
    }


POLICY_METRICS = ["bellman", "cql_penalty", "actor", "alpha", "q"]
DIAGNOSTICS = ["task_id_accuracy", "behaviour_probe_accuracy", "behaviour_chance", "wm_one_step_mse"]


def metric_columns(algo) -> list[str]:
    return ["iteration", "phase", "seconds", *algo.loss_names,
            *[m for m in POLICY_METRICS if m not in algo.loss_names], *DIAGNOSTICS]


def _truncate_metrics(path: Path, iteration: int, seconds) -> float:
    """Drop the rows a killed process logged past the checkpoint it is resumed from (the resume
    logs them again), and return the training seconds at the checkpoint: its own record, else
    (a checkpoint that has none) the last kept row's, else 0."""
    rows, columns = [], None
    if path.exists():
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            columns, rows = reader.fieldnames, [row for row in reader if int(row["iteration"]) <= iteration]
    if columns:  # rewritten whole or not at all: a kill now leaves the old file
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(path, lambda f: f.write(text.getvalue().encode()))
    if seconds is None:
        seconds = float(rows[-1]["seconds"]) if rows else 0.0
    return float(seconds)


def _append_csv(path: Path, row: dict, columns: list[str]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerow(row)


def suggested_suite(env_id: str, dataset_id: str, profile: str):
    """The evaluation suite that matches a run: one that has this env on data of this size
    (tiny/lite/full), preferring the suite named like the profile, then the smallest."""
    from bitr_eval.suites import SUITES

    size = dataset_id.rsplit("-", 2)[-2] if dataset_id.count("-") >= 2 else ""
    fits = [s for s in SUITES.values() if any(u.env_id == env_id and u.profile == size for u in s.units)]
    if not fits:
        return None
    return next((s for s in fits if s.name == profile), min(fits, key=lambda s: len(s.units)))


def _write_training_record(out: Path, cfg: Config, profile: str) -> None:
    """`out/training.json`, which `bitr evaluate` copies into the result: how the agent was made.
    The wall time is the last row of metrics.csv: the work kept, over every process of a
    resumed run (what a killed process did after its last checkpoint is not counted)."""
    with open(out / "metrics.csv", newline="") as f:
        seconds = float(list(csv.DictReader(f))[-1]["seconds"])
    write_json_atomic(out / "training.json", {"wall_seconds": seconds, "algo": cfg.algo, "seed": cfg.seed,
                                              "profile": profile, "dataset": cfg.dataset})


PROBES = ("task_id_accuracy", "behaviour_probe_accuracy")


def probes_table(runs: Path) -> str:
    """The encoders' end-of-training probes of a sweep folder (`<runs>/<algo>/seed<k>/<family>/
    metrics.csv`) as a Markdown table: per method and family, how often z named the held-out task
    and the behaviour policy, each finished run's (its agent.pt written) in seed order. Folders
    that are not a method, a seed or a family are not runs and are passed over."""
    from bitr_eval.sweep import DONE_FILE

    families = [env_slug(env_id) for env_id in ENVS]
    found = {}  # (algo, family) -> [(seed, probes)]
    for algo in ALGOS:
        for folder in (runs / algo).glob("seed*"):
            seed = re.fullmatch(r"seed(\d+)", folder.name)
            if seed is None:
                continue
            for family in families:
                finished = (folder / family / DONE_FILE).is_file()
                probes = _last_probes(folder / family / "metrics.csv") if finished else None
                if probes is not None:
                    found.setdefault((algo, family), []).append((int(seed[1]), probes))
    if not found:
        raise ValueError(f"no finished run under {runs}: give a `bitr sweep --out` folder, whose runs are "
                         f"<algo>/seed<k>/<family>/{DONE_FILE}")
    found_algos, found_families = {a for a, _ in found}, {f for _, f in found}
    families = [f for f in families if f in found_families]
    lines = ["| Method | " + " | ".join(f"`{f}` {what}" for f in families for what in ("task", "behaviour")) + " |",
             "| --- |" + " ---: |" * (2 * len(families))]
    for algo in ALGOS:
        if algo in found_algos:
            cells = [" / ".join(f"{100 * probes[k]:.0f}%" for _, probes in sorted(found.get((algo, f), []))) or "–"
                     for f in families for k in range(len(PROBES))]
            lines.append(f"| `{algo}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _last_probes(metrics: Path) -> tuple[float, ...] | None:
    """The probes of the last row of a metrics.csv that holds them, if any."""
    if not metrics.is_file():
        return None
    with open(metrics, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get(PROBES[0])]
    if not rows:
        return None
    try:
        return tuple(float(rows[-1][key]) for key in PROBES)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{metrics}: its last diagnostics row has no number for {' or '.join(PROBES)}: "
                         f"train that run again or remove its folder") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bitr-agent", description="Train BITR or a peer method in one harness.")
    commands = parser.add_subparsers(dest="command", required=True)
    probing = commands.add_parser("probes", help="print the encoders' end-of-training probes of a sweep folder "
                                                 "as a Markdown table")
    probing.add_argument("runs", help="a `bitr sweep --out` folder: <runs>/<algo>/seed<k>/<family>/metrics.csv")
    run = commands.add_parser("train", help="train on a dataset (resumes from --out/checkpoint.pt)")
    run.add_argument("--algo", default="bitr", choices=list(ALGOS), help="the method (bitr_agent/methods/)")
    run.add_argument("--dataset", required=True, help="a train-iid dataset id, e.g. bitr/point-robot-sparse/train-iid-lite-v0")
    run.add_argument("--profile", default="quick", choices=list(PROFILES))
    run.add_argument("--out", required=True)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--restart", action="store_true",
                     help="train a finished run that has no checkpoint.pt (a committed one) again from scratch")
    fixed = ("algo", "dataset", "seed")
    overridable = run.add_argument_group(
        "profile settings", "override one setting of --profile (the Config dataclass in bitr_agent/train.py says "
        "what each does); a finished run continues with a larger --sac-iterations")
    add_dataclass_flags(overridable, Config, skip=fixed, defaults=False)
    args = parser.parse_args(argv)
    if args.command == "probes":
        try:
            print(probes_table(Path(args.runs)))
        except ValueError as err:
            print(f"bitr-agent probes: {err}", file=sys.stderr)
            return 2
        return 0
    cfg = dataclasses.replace(PROFILES[args.profile], algo=args.algo, dataset=args.dataset, seed=args.seed,
                              **set_fields(args, Config, skip=fixed))
    try:
        train(cfg, Path(args.out), restart=args.restart)
    except (TrainingFailed, RunFolderError) as err:
        print(f"bitr-agent train: {err}", file=sys.stderr)
        return 1
    _write_training_record(Path(args.out), cfg, args.profile)
    weights = load_weights(Path(args.out) / "agent.pt")
    privileged = getattr(method(args.algo).agent_class, "privileged", False)
    factory = "bitr_agent:load_privileged" if privileged else "bitr_agent:load"
    chosen = suggested_suite(weights["env_id"], args.dataset, args.profile)
    if chosen is None:
        print(f"agent written to {Path(args.out) / 'agent.pt'}; no evaluation suite has {weights['env_id']} on this "
              f"dataset's size (suites: {', '.join(_suite_names())})")
        return 0
    from bitr_eval.sweep import result_file

    only = "" if {u.env_id for u in chosen.units} == {weights["env_id"]} else f" --env {weights['env_id']}"
    print(f"agent written to {Path(args.out) / 'agent.pt'}; evaluate it with "
          f"`bitr evaluate --agent {factory} --checkpoint {args.out} --suite {chosen.name}{only} "
          f"--out {args.out}/{result_file(chosen.name)}`")
    return 0


def _suite_names():
    from bitr_eval.suites import SUITES

    return list(SUITES)


if __name__ == "__main__":
    sys.exit(main())
