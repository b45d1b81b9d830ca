"""FOCAL: a deterministic per-transition MLP encoder (z = the mean over the context) trained by a
distance metric loss alone: transitions of the same task pulled together, of different tasks
pushed apart. Real data only, no world model; the encoder's gradient never enters the Bellman
backup (phase 2 reads z without a gradient).

Ours vs the paper: our shared SAC+CQL learner instead of its BRAC-style actor-critic, and the
encoder trained first (phase 1) instead of alongside the policy, with z detached either way.
"""

from __future__ import annotations

import torch

from bitr_agent.learner import Method
from bitr_agent.model import TransitionEncoder, distance_metric_loss

PER_TASK = 8  # transitions per task of a meta-batch that enter the pairwise loss


def per_transition_z(encoder, sampler, tasks):
    """Per-transition z of PER_TASK transitions of each task's context set, flat, with task labels;
    and the context sets themselves (tasks, K, ...)."""
    context, _ = sampler.contexts(tasks)
    z = encoder.per_transition(context["obs"], context["act"], context["rew"], context["next_obs"])
    labels = torch.arange(len(tasks)).repeat_interleave(PER_TASK)
    return z[:, :PER_TASK].flatten(0, 1), labels, context


class FOCAL(Method):
    loss_names = ("distance",)
    encoder_kind = "transition"

    def build(self):
        return {"encoder": TransitionEncoder(self.obs_dim, self.act_dim, self.cfg.z_dim, self.cfg.width)}

    def update_representation(self, sampler, progress=1.0):
        z, labels, _ = per_transition_z(self.encoder, sampler, sampler.task_ids())
        distance = distance_metric_loss(z, labels)
        self.step(distance)
        return {"distance": distance.item()}
