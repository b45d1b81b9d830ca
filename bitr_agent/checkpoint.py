"""A training run's folder (`bitr-agent train --out`), and its exact resume after a kill.

- `checkpoint.pt`, every `checkpoint_every` iterations: every network, optimiser and random
  state, the settings and the training seconds so far. The same command after a kill continues
  from it bit for bit; a finished run continues with a larger `sac_iterations`.
- `metrics.csv`: a row every `log_every` iterations; a resume cuts it back to its checkpoint.
- `agent.pt` (`AGENT_FILE`): the finished agent, tensors only, loaded with `weights_only=True`.
- `training.json`: how the agent was made, which `bitr evaluate` copies into its result.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import numpy as np
import torch

from bitr_agent.agent import AGENT_FILE, load_weights
from bitr_agent.config import Config
from bitr_agent.data import Sampler
from bitr_agent.learner import Method
from bitr_agent.utils import atomic_save
from bitr_envs.files import atomic_write, write_json_atomic

CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.csv"
TRAINING_FILE = "training.json"

# What may differ between a run and its resume: a finished run can be trained for longer.
RESUMABLE_CHANGES = {"sac_iterations", "checkpoint_every", "log_every"}


class RunFolderError(ValueError):
    """--out cannot be trained into as asked (another config's checkpoint, a finished run)."""


def check_run_folder(out: Path, restart: bool) -> None:
    """Refuse to overwrite a finished run that has no checkpoint (a committed one) unless `restart`."""
    if (out / AGENT_FILE).exists() and not (out / CHECKPOINT_FILE).exists() and not restart:
        raise RunFolderError(f"{out} holds a finished run ({AGENT_FILE}) and no {CHECKPOINT_FILE} to continue it "
                             "from: training would replace its agent and metrics. Use another --out, or --restart "
                             "to train it again from scratch.")


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


def comparable(config: dict) -> dict:
    """A recorded config as a resume compares it: settings added after the checkpoint was written
    take their defaults; those a resume may change are left out."""
    known = {f.name for f in dataclasses.fields(Config)}
    config = {**dataclasses.asdict(Config()), **config}
    return {k: v for k, v in config.items() if k in known and k not in RESUMABLE_CHANGES}


def resume(out: Path, learner: Method, cfg: Config, rng: np.random.Generator) -> tuple[int, float]:
    """Load `out`'s checkpoint into the learner and the random generators, cut metrics.csv back
    to it; return its iteration and training seconds."""
    path = out / CHECKPOINT_FILE
    state = load_weights(path)
    if comparable(state["config"]) != comparable(dataclasses.asdict(cfg)):
        raise RunFolderError(f"{path} was written with another config; use another --out or the same settings "
                             f"(only {', '.join(sorted(RESUMABLE_CHANGES))} may change).")
    if state["iteration"] > cfg.wm_iterations + cfg.sac_iterations:
        raise RunFolderError(f"{path} is at iteration {state['iteration']}, past this config's end: "
                             f"--sac-iterations can only grow.")
    for name, module in learner.modules().items():
        module.load_state_dict(state["modules"][name])
    with torch.no_grad():
        learner.log_alpha.copy_(state["log_alpha"])
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    return state["iteration"], _cut_metrics(out / METRICS_FILE, state["iteration"], state.get("seconds"))


def _cut_metrics(path: Path, iteration: int, seconds) -> float:
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


@torch.no_grad()
def save_agent(out: Path, learner: Method, cfg: Config, env_id: str, obs_mean, obs_std, action_scale,
               sampler: Sampler) -> None:
    """agent.pt: what `bitr_agent:load` rebuilds the test-time agent from, and the settings."""
    atomic_save({
        "algo": cfg.algo,
        "config": dataclasses.asdict(cfg),
        "env_id": env_id,
        **learner.export(),
        "actor": learner.actor.state_dict(),
        "obs_mean": torch.as_tensor(obs_mean, dtype=torch.float32),
        "obs_std": torch.as_tensor(obs_std, dtype=torch.float32),
        "action_scale": torch.as_tensor(action_scale),
        "z_prior": learner.z_prior(sampler),
    }, out / AGENT_FILE)


def write_training_record(out: Path, cfg: Config, profile: str) -> None:
    """`out/training.json`, which `bitr evaluate` copies into the result: how the agent was made.
    The wall time is the last row of metrics.csv: the work kept, over every process of a
    resumed run (what a killed process did after its last checkpoint is not counted)."""
    with open(out / METRICS_FILE, newline="") as f:
        seconds = float(list(csv.DictReader(f))[-1]["seconds"])
    write_json_atomic(out / TRAINING_FILE, {"wall_seconds": seconds, "algo": cfg.algo, "seed": cfg.seed,
                                            "profile": profile, "dataset": cfg.dataset})
