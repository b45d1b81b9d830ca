"""BITR: a set-attention task encoder trained by InfoNCE across behaviour policies, against a
behaviour adversary (reversed gradient), and through a causal-Transformer world model's
likelihood; the policy learns on real transitions plus 1-step rollouts the model imagines.

Variants (ablations): `bitr-no-invariance` (adversary off), `bitr-no-cql` (CQL weight 0),
`bitr-no-wm` (no world model: real data only, the encoder trained by InfoNCE and the
adversary, as in BITR; add `--adversary-weight 0` for InfoNCE alone),
`bitr-mlp-wm` (an ensemble of MLP dynamics models in place of the Transformer),
`bitr-mean-pool` (FOCAL's pooling, the mean of per-transition z, in place of set attention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bitr_agent.data import encode, flat
from bitr_agent.learner import Method
from bitr_agent.model import (
    BehaviourAdversary,
    MLPDynamicsEnsemble,
    TaskEncoder,
    TransitionEncoder,
    WorldModel,
    info_nce,
    reverse_gradient,
)


@dataclass
class BITRConfig:
    """BITR's own settings, shared by its variants: the world model, the encoder's terms, z's norm."""

    wm_layers: int = 2
    """Transformer blocks of the world model"""
    wm_heads: int = 4
    """attention heads per block of the world model"""
    windows_per_task: int = 8
    """world-model histories per task per phase-1 update"""
    contrastive_weight: float = 1.0
    """weight of the InfoNCE task term; 0 switches it off"""
    reconstruction_weight: float = 1.0
    """0 keeps the world model's gradient out of the encoder; any other value lets it in (it does not scale the term)"""
    adversary_weight: float = 0.3
    """weight of the behaviour adversary's reversed gradient into the encoder; 0 switches the adversary off"""
    adversary_ramp: bool = False
    """DANN's schedule: the adversary's weight ramps from 0 over phase 1"""
    unit_z: bool = False
    """z on the unit sphere: InfoNCE scores only z's direction, so without it nothing bounds z's norm, and the
    adversary's reversed gradient can grow it without limit"""
    uncertainty_weight: float = 0.0
    """MOPO-style penalty on imagined rewards: this weight times the world model's predicted std"""
    mlp_wm_members: int = 5
    """members of bitr-mlp-wm's ensemble of MLP dynamics models"""


def adversary_scale(cfg, progress: float) -> float:
    """The reversed gradient's weight; with `adversary_ramp`, DANN's schedule from 0 to the weight
    over phase 1: w * (2 / (1 + exp(-10 p)) - 1), p the fraction of phase 1 done."""
    if not cfg.adversary_ramp:
        return cfg.adversary_weight
    return cfg.adversary_weight * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)


class BITR(Method):
    config_class = BITRConfig
    loss_names = ("contrastive", "reconstruction", "adversary")

    def build(self):
        cfg = self.cfg
        return {"encoder": self.make_encoder(),
                "world_model": self.make_world_model(),
                "adversary": BehaviourAdversary(cfg.z_dim, self.n_behaviours, cfg.width)}

    def make_encoder(self):
        return TaskEncoder(self.obs_dim, self.act_dim, self.cfg.z_dim, self.cfg.width, normalise=self.cfg.unit_z)

    def make_world_model(self):
        cfg = self.cfg
        return WorldModel(self.obs_dim, self.act_dim, cfg.z_dim, cfg.width, cfg.wm_layers, cfg.wm_heads, cfg.history)

    def update_representation(self, sampler, progress=1.0):
        cfg = self.cfg
        tasks = sampler.task_ids()
        context_a, behaviour_a = sampler.contexts(tasks)
        context_b, _ = sampler.contexts(tasks, different_from=behaviour_a)
        z_a, z_b = encode(self.encoder, context_a), encode(self.encoder, context_b)
        contrastive = info_nce(z_a, z_b, cfg.temperature)
        reconstruction = self.reconstruction(sampler, tasks, z_a if cfg.reconstruction_weight > 0 else z_a.detach())
        # The adversary learns to name the behaviour policy; the encoder gets the reversed gradient.
        logits = self.adversary(reverse_gradient(z_a, adversary_scale(cfg, progress)))
        adversary = F.cross_entropy(logits, torch.as_tensor(behaviour_a))
        loss = cfg.contrastive_weight * contrastive + reconstruction
        if cfg.adversary_weight > 0:
            loss = loss + adversary
        self.step(loss)
        return {"contrastive": contrastive.item(), "reconstruction": reconstruction.item(),
                "adversary": adversary.item()}

    def reconstruction(self, sampler, tasks, z):
        n = self.cfg.windows_per_task
        w = flat(sampler.windows(tasks, n))
        return self.world_model.loss(w["obs"], w["prev_rew"], w["act"], w["rew"], w["next_obs"], w["done"],
                                     z.repeat_interleave(n, 0))

    @torch.no_grad()
    def imagine(self, sampler, tasks, z):
        """1-step rollouts: real histories, the policy's action at the last step, the model's outcome."""
        cfg = self.cfg
        n = cfg.imagined_per_task
        w = flat(sampler.windows(tasks, n))
        zz = z.repeat_interleave(n, 0)
        last_obs = w["obs"][:, -1]
        action, _, _ = self.actor(torch.cat([last_obs, zz], -1))
        act = w["act"].clone()
        act[:, -1] = action
        mean, log_std, done_logit = self.world_model(w["obs"], w["prev_rew"], act, zz)
        return self.outcome(last_obs, action, zz, mean[:, -1], log_std[:, -1], done_logit[:, -1])

    def outcome(self, obs, action, z, mean, log_std, done_logit):
        std = log_std.exp()
        sample = mean + std * torch.randn_like(std)
        reward = sample[:, -1] - self.cfg.uncertainty_weight * std.norm(dim=-1)
        return {"obs": obs, "act": action, "rew": reward, "next_obs": obs + sample[:, :-1],
                "done": (done_logit > 0).float(), "z": z}

    @torch.no_grad()
    def world_model_error(self, sampler):
        ids = list(range(len(sampler.tasks)))
        z = self.task_z(sampler, ids)
        w = flat(sampler.windows(ids, 16))
        mean, _, _ = self.world_model(w["obs"], w["prev_rew"], w["act"], z.repeat_interleave(16, 0))
        target = torch.cat([w["next_obs"] - w["obs"], w["rew"].unsqueeze(-1)], -1)
        return float(((mean - target) ** 2).mean())


class BITRNoWorldModel(BITR):
    """No world model: the encoder learns from InfoNCE and the adversary only; real data only."""

    loss_names = ("contrastive", "adversary")
    fixed = {"imagined_per_task": 0, "reconstruction_weight": 0.0}

    def make_world_model(self):
        return None

    def build(self):
        nets = super().build()
        del nets["world_model"]
        return nets

    def reconstruction(self, sampler, tasks, z):
        return torch.zeros(())

    def update_representation(self, sampler, progress=1.0):
        out = super().update_representation(sampler, progress)
        del out["reconstruction"]
        return out

    def world_model_error(self, sampler):
        return None


class BITRMLPWorldModel(BITR):
    """An ensemble of MLP dynamics models (s, a, z) -> Gaussian over (ds, r) in place of the
    Transformer (`mlp_wm_members` members, twice the width); each imagined transition comes from
    a member drawn at random."""

    def make_world_model(self):
        cfg = self.cfg
        return MLPDynamicsEnsemble(self.obs_dim, self.act_dim, cfg.z_dim, 2 * cfg.width, cfg.mlp_wm_members)

    def reconstruction(self, sampler, tasks, z):
        n = self.cfg.windows_per_task * self.cfg.history  # as many transitions as the Transformer's tokens
        t = flat(sampler.transitions(tasks, n))
        return self.world_model.loss(t["obs"], t["act"], t["rew"], t["next_obs"], t["done"], z.repeat_interleave(n, 0))

    @torch.no_grad()
    def imagine(self, sampler, tasks, z):
        n = self.cfg.imagined_per_task
        t = flat(sampler.transitions(tasks, n))
        zz = z.repeat_interleave(n, 0)
        action, _, _ = self.actor(torch.cat([t["obs"], zz], -1))
        mean, log_std, done_logit = self.world_model(t["obs"], action, zz)
        member = torch.randint(self.world_model.members, (len(zz),))
        rows = torch.arange(len(zz))
        return self.outcome(t["obs"], action, zz, mean[member, rows], log_std[member, rows], done_logit[member, rows])

    @torch.no_grad()
    def world_model_error(self, sampler):
        ids = list(range(len(sampler.tasks)))
        z = self.task_z(sampler, ids)
        t = flat(sampler.transitions(ids, 128))
        mean, _, _ = self.world_model(t["obs"], t["act"], z.repeat_interleave(128, 0))
        target = torch.cat([t["next_obs"] - t["obs"], t["rew"].unsqueeze(-1)], -1)
        return float(((mean.mean(0) - target) ** 2).mean())


class BITRNoInvariance(BITR):
    fixed = {"adversary_weight": 0.0}


class BITRNoCQL(BITR):
    fixed = {"cql_weight": 0.0}


class BITRMeanPool(BITR):
    """BITR's objectives with FOCAL's pooling: one MLP per transition, z the mean of their z (each
    on the unit sphere with `unit_z`, so z's norm stays at most 1), in place of set attention.
    It asks whether BITR's lead on partly uninformative contexts comes from the pooling."""

    encoder_kind = "transition"

    def make_encoder(self):
        return TransitionEncoder(self.obs_dim, self.act_dim, self.cfg.z_dim, self.cfg.width, normalise=self.cfg.unit_z)
