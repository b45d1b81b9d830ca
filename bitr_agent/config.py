"""A run's settings: what every method shares (`TrainConfig`), what each method adds (the
dataclass at the top of its file, e.g. `BITRConfig` in `methods/bitr.py`), and the profiles
that set them for a scale of machine.

`Config` is all of them, flat: one flag each of `bitr-agent train`, and the `config` dict a
checkpoint records (every setting, whichever method ran, so one record reads like another).
A run's settings are, later ones winning: the defaults, its profile's, its profile's for its
family (`Profile.families`), the command line's, then its method's fixed ones (`resolve`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from bitr_agent.methods import ALGOS, method
from bitr_envs.datasets.ids import DatasetId


@dataclass
class TrainConfig:
    """Settings every method shares: the data, the two phases, the conservative SAC learner, bookkeeping."""

    algo: str = "bitr"
    """the method: a name of bitr_agent.methods.ALGOS"""
    dataset: str = ""
    """the training dataset, a train-iid id such as bitr/point-robot-sparse/train-iid-lite-v0"""
    seed: int = 0
    """seeds torch and numpy: the same seed and settings give the same weights, bit for bit"""
    threads: int = 1
    """torch threads; more than the free cores makes small networks crawl"""
    # the task encoder (phase 1)
    z_dim: int = 8
    """size of the task embedding z"""
    width: int = 64
    """width of the encoder and of the method's other phase-1 networks"""
    history: int = 8
    """steps per history window the sampler draws (the world model's context)"""
    context_size: int = 64
    """transitions per context set when training the encoder"""
    task_batch: int = 16
    """tasks per meta-batch (both phases)"""
    wm_iterations: int = 1500
    """phase-1 updates: the encoder and the method's other phase-1 networks (BITR's world model, ...)"""
    wm_lr: float = 1e-3
    """learning rate of phase 1"""
    temperature: float = 0.1
    """InfoNCE temperature (BITR's task term, CORRO's transition term)"""
    # conservative SAC (phase 2)
    sac_iterations: int = 4000
    """phase-2 updates of SAC+CQL on the frozen encoder's z; a finished run continues when this grows"""
    hidden: int = 128
    """width of the actor and the critics"""
    batch_per_task: int = 32
    """real transitions per task in a policy batch"""
    imagined_per_task: int = 8
    """imagined transitions per task in a policy batch (1-step model rollouts, for the methods that imagine)"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """step of the target critics towards the critics, per update"""
    lr: float = 3e-4
    """learning rate of the actor, the critics and the entropy temperature"""
    cql_weight: float = 1.0
    """weight of the conservative (CQL(H)) penalty; 0 leaves plain SAC's critic"""
    cql_actions: int = 10
    """sampled actions per state and source (uniform, policy) in the conservative penalty"""
    # bookkeeping
    checkpoint_every: int = 500
    """iterations between checkpoints (a killed run resumes from the last one)"""
    log_every: int = 250
    """iterations between rows of metrics.csv and progress lines"""


# each method's own settings, once each (BITR's variants share BITR's)
METHOD_CONFIGS = tuple(dict.fromkeys(m.config_class for m in ALGOS.values() if m.config_class is not None))


@dataclass
class Config(TrainConfig, *METHOD_CONFIGS):
    """Every setting of a run, flat: the shared ones and each method's own."""


@dataclass(frozen=True)
class Profile:
    """A scale of machine: the settings that differ from the defaults there, and per family
    (its env slug, e.g. "cheetah-vel") the ones that differ again for that family."""

    purpose: str
    settings: dict
    families: dict = field(default_factory=dict)


PROFILES = {
    "quick": Profile("Point-Robot-Sparse in a few minutes on one CPU core",
                     {"batch_per_task": 16, "cql_actions": 5, "cql_weight": 5.0}),
    # The CQL actions multiply the critic's cost, so they and the batch are small.
    # 40k policy updates: at 20k the policy had not learned to use z between the training
    # tasks (Cheetah-Vel seed 1: 47 -> 84 offline-iid from 20k to 40k). The ramped adversary:
    # at full weight from the start it collapsed the encoder on Point-Robot-Sparse seed 1.
    # Unit z: with the ramp, seed 2 still collapsed (||z|| 0.8 -> 6.5e6 in 100 iterations).
    "lite": Profile("the lite suite's families, under an hour each on one CPU core (two runs side by side on 2 cores)",
                    {"z_dim": 16, "width": 128, "wm_iterations": 5000, "sac_iterations": 40000, "hidden": 128,
                     "batch_per_task": 32, "imagined_per_task": 8, "cql_weight": 5.0, "cql_actions": 4,
                     "adversary_ramp": True, "unit_z": True, "checkpoint_every": 2000, "log_every": 1000}),
    # The BITR paper's public code: 2 layers, 4 heads, width 256, 10k world-model iterations,
    # meta-batch 16, 256x256 SAC, CQL weight 0.5 with 10 actions, 8-step contexts.
    "paper": Profile("the BITR paper's settings, for a GPU",
                     {"threads": os.cpu_count() or 1, "z_dim": 16, "width": 256, "wm_iterations": 10000,
                      "sac_iterations": 500000, "hidden": 256, "batch_per_task": 256, "imagined_per_task": 8,
                      "cql_weight": 0.5, "adversary_ramp": True, "unit_z": True, "checkpoint_every": 10000,
                      "log_every": 5000}),
}


def family_of(dataset: str) -> str | None:
    """The env slug of a dataset id (bitr/cheetah-vel/train-iid-lite-v0 -> cheetah-vel)."""
    try:
        return DatasetId.parse(dataset).env
    except ValueError:
        return None


def from_profile(profile: str, **settings) -> Config:
    """A run's settings on `profile` before its method's fixed ones: the defaults, the profile's,
    the profile's for the family of `settings["dataset"]`, then `settings` (the command line's)."""
    chosen = PROFILES[profile]
    by_family = chosen.families.get(family_of(settings.get("dataset", "")), {})
    return Config(**{**chosen.settings, **by_family, **settings})


def resolve(cfg: Config) -> Config:
    """The settings a run uses: its method's fixed ones (a variant's ablation) applied over the rest."""
    return dataclasses.replace(cfg, **method(cfg.algo).fixed)
