"""UNICORN-SS (the self-supervised variant the peers' comparison tables report): beta * FOCAL's
distance metric loss + the Gaussian likelihood of (s' - s, r) under a decoder p(s', r | s, a, z),
z being the task's context z. beta (`unicorn_beta`; negative = by family): 0.15 for Cheetah and
Ant, 1.5 for Hopper, 0.7 for Walker (the paper's values); 1.0 for the families it did not tune
(Point-Robot, Reach, Push: our choice, in the middle of its range). Real data only: the decoder
shapes z and never imagines transitions.

Ours vs the paper: our shared SAC+CQL learner after an encoder phase.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bitr_agent.data import flat
from bitr_agent.learner import Method
from bitr_agent.methods.focal import per_transition_z
from bitr_agent.model import GaussianMLP, TransitionEncoder, distance_metric_loss


@dataclass
class UNICORNConfig:
    """UNICORN's own setting: the weight of its distance metric term."""

    unicorn_beta: float = -1.0
    """weight of FOCAL's distance metric loss beside the decoder's likelihood; negative: by family (BETA)"""


BETA = {"cheetah": 0.15, "ant": 0.15, "hopper": 1.5, "walker": 0.7}
DEFAULT_BETA = 1.0


def beta_for(cfg) -> float:
    if cfg.unicorn_beta >= 0:
        return cfg.unicorn_beta
    family = cfg.dataset.split("/")[1] if cfg.dataset.count("/") >= 2 else cfg.dataset
    return next((b for name, b in BETA.items() if family.startswith(name)), DEFAULT_BETA)


class UNICORN(Method):
    config_class = UNICORNConfig
    loss_names = ("distance", "decoder_nll")
    encoder_kind = "transition"

    def build(self):
        cfg = self.cfg
        return {"encoder": TransitionEncoder(self.obs_dim, self.act_dim, cfg.z_dim, cfg.width),
                "decoder": GaussianMLP(self.obs_dim + self.act_dim + cfg.z_dim, self.obs_dim + 1, cfg.width)}

    def update_representation(self, sampler, progress=1.0):
        cfg = self.cfg
        tasks = sampler.task_ids()
        z, labels, context = per_transition_z(self.encoder, sampler, tasks)
        distance = distance_metric_loss(z, labels)
        z_task = self.encoder(context["obs"], context["act"], context["rew"], context["next_obs"])
        n = cfg.batch_per_task
        t = flat(sampler.transitions(tasks, n))
        x = torch.cat([t["obs"], t["act"], z_task.repeat_interleave(n, 0)], -1)
        nll = self.decoder.nll(x, torch.cat([t["next_obs"] - t["obs"], t["rew"].unsqueeze(-1)], -1))
        self.step(beta_for(cfg) * distance + nll)
        return {"distance": distance.item(), "decoder_nll": nll.item()}
