"""Context-conditioned behaviour cloning: BITR's set encoder and the actor trained end to end by
the squared error of the policy's mode against the dataset action given (s, z), z from a context
set of the same task. No critic, no world model; every update of both phases is the same.
"""

from __future__ import annotations

import torch

from bitr_agent.data import encode, flat
from bitr_agent.learner import Method
from bitr_agent.model import TaskEncoder


class ContextBC(Method):
    loss_names = ("bc",)

    def build(self):
        return {"encoder": TaskEncoder(self.obs_dim, self.act_dim, self.cfg.z_dim, self.cfg.width)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.wm_optimizer = None  # one optimiser for the encoder and the actor together
        self.bc_optimizer = torch.optim.Adam([*self.encoder.parameters(), *self.actor.parameters()], lr=self.cfg.lr)

    def update_representation(self, sampler, progress=1.0):
        cfg = self.cfg
        tasks = sampler.task_ids()
        context, _ = sampler.contexts(tasks)
        z = encode(self.encoder, context)
        t = flat(sampler.transitions(tasks, cfg.batch_per_task))
        _, _, mode = self.actor(torch.cat([t["obs"], z.repeat_interleave(cfg.batch_per_task, 0)], -1))
        bc = ((mode - t["act"]) ** 2).sum(-1).mean()
        self.bc_optimizer.zero_grad()
        bc.backward()
        self.bc_optimizer.step()
        return {"bc": bc.item()}

    def update_policy(self, sampler):
        return self.update_representation(sampler)

    def modules(self):
        return {**super().modules(), "bc_optimizer": self.bc_optimizer}
