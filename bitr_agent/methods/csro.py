"""CSRO: FOCAL's distance metric loss (weight `csro_focal_weight`, 10) plus a CLUB upper bound
on the mutual information between a transition's z and its (s, a) (weight `club_weight`, 10),
which keeps the behaviour policy's state-action distribution out of z. A variational Gaussian
q(z | s, a) is fitted by likelihood to the (detached) z; the encoder minimises the CLUB estimate
computed with q held fixed.

At test time, online, "non-prior context collection": the first action is uniform random (no
z from the prior), then the agent acts with the z inferred from the transitions it has collected
so far, re-inferred after every step.

Ours vs the paper: our shared SAC+CQL learner instead of BRAC; the encoder trained first
(phase 1); q is an MLP of our `width` (theirs 3x200).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bitr_agent.agent import ContextAgent
from bitr_agent.learner import Method
from bitr_agent.methods.focal import PER_TASK, per_transition_z
from bitr_agent.model import GaussianMLP, TransitionEncoder, club_upper_bound, distance_metric_loss


@dataclass
class CSROConfig:
    """CSRO's own settings: the weights of its two encoder terms."""

    csro_focal_weight: float = 10.0
    """weight of FOCAL's distance metric loss"""
    club_weight: float = 10.0
    """weight of the CLUB upper bound on the mutual information of z and (s, a)"""


class NonPriorCollectionAgent(ContextAgent):
    """Online: a uniform random first action, then z from its own transitions, every step."""

    def act(self, obs):
        if self.context is None:  # nothing collected yet: no prior z, a random action
            return self.rng.uniform(self.low, self.high).astype(self.low.dtype)
        return super().act(obs)


class CSRO(Method):
    config_class = CSROConfig
    loss_names = ("distance", "club", "q_nll")
    encoder_kind = "transition"
    agent_class = NonPriorCollectionAgent

    def build(self):
        cfg = self.cfg
        return {"encoder": TransitionEncoder(self.obs_dim, self.act_dim, cfg.z_dim, cfg.width),
                "club_q": GaussianMLP(self.obs_dim + self.act_dim, cfg.z_dim, cfg.width)}

    def update_representation(self, sampler, progress=1.0):
        cfg = self.cfg
        z, labels, context = per_transition_z(self.encoder, sampler, sampler.task_ids())
        distance = distance_metric_loss(z, labels)
        sa = torch.cat([context["obs"][:, :PER_TASK], context["act"][:, :PER_TASK]], -1).flatten(0, 1)
        mean, log_std = self.club_q(sa)
        club = club_upper_bound(mean.detach(), log_std.detach(), z)  # q fixed: only the encoder learns from it
        q_nll = (0.5 * ((z.detach() - mean) / log_std.exp()) ** 2 + log_std).sum(-1).mean()
        self.step(cfg.csro_focal_weight * distance + cfg.club_weight * club + q_nll)
        return {"distance": distance.item(), "club": club.item(), "q_nll": q_nll.item()}

