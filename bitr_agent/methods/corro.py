"""CORRO: a per-transition MLP encoder with L2-normalised z (z = the mean over the context),
trained by InfoNCE on single transitions: the anchor's positive is another transition of its
task; its `corro_negatives` (16) negatives keep the anchor's own (s, a) and get (r, s')
relabelled as another task would produce them, so only the task can tell them apart, not the
state-action distribution of whoever collected the data. Temperature `temperature` (0.1).
Real data only, no imagination.

Relabelling (`corro_relabel`): "model" (default) is a Gaussian model of (s' - s, r) given
(s, a, a learned embedding of the training task), fitted across all training tasks alongside
the encoder; a negative takes the prediction for a random *other* training task. (The paper
uses a CVAE across tasks; ours is a simpler conditional model with the same role.) "noise" is
the paper's cheaper variant: r + N(0, 0.5^2), s' unchanged.

Ours vs the paper: our shared SAC+CQL learner after an encoder phase (theirs: an offline
actor-critic alongside); z of our z_dim, not 5.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from bitr_agent.data import flat
from bitr_agent.learner import Method
from bitr_agent.model import GaussianMLP, TransitionEncoder


@dataclass
class CORROConfig:
    """CORRO's own settings: its negatives (InfoNCE's temperature is the shared `temperature`)."""

    corro_negatives: int = 16
    """negatives per anchor: its own (s, a) with (r, s') relabelled as another task would give them"""
    corro_relabel: str = "model"
    """how negatives are relabelled: "model" (a Gaussian model learned across the training tasks) or "noise"
    (r + N(0, 0.5^2), s' unchanged)"""


class CORRO(Method):
    config_class = CORROConfig
    loss_names = ("corro_nce", "relabel_nll")
    encoder_kind = "transition"

    def build(self):
        cfg = self.cfg
        nets = {"encoder": TransitionEncoder(self.obs_dim, self.act_dim, cfg.z_dim, cfg.width, normalise=True)}
        if cfg.corro_relabel == "model":
            nets["task_embedding"] = nn.Embedding(self.n_tasks, cfg.width)
            nets["relabeller"] = GaussianMLP(self.obs_dim + self.act_dim + cfg.width, self.obs_dim + 1, cfg.width)
        elif cfg.corro_relabel != "noise":
            raise ValueError(f"corro_relabel must be 'model' or 'noise', not {cfg.corro_relabel!r}")
        return nets

    def negatives(self, batch, task_ids):
        """`corro_negatives` copies of each anchor with the same (s, a) and relabelled (r, s'):
        every array (N, k, ...)."""
        k = self.cfg.corro_negatives
        obs, act = (batch[key].unsqueeze(1).expand(-1, k, -1) for key in ("obs", "act"))
        if self.cfg.corro_relabel == "noise":
            rew = batch["rew"].unsqueeze(1) + 0.5 * torch.randn(len(obs), k)
            return {"obs": obs, "act": act, "rew": rew, "next_obs": batch["next_obs"].unsqueeze(1).expand(-1, k, -1)}
        # another training task for each negative (never the anchor's own)
        shift = torch.randint(1, self.n_tasks, (len(obs), k))
        other = (task_ids.unsqueeze(1) + shift) % self.n_tasks
        with torch.no_grad():
            mean, log_std = self.relabeller(torch.cat([obs, act, self.task_embedding(other)], -1))
            sample = mean + log_std.exp() * torch.randn_like(mean)
        return {"obs": obs, "act": act, "rew": sample[..., -1], "next_obs": obs + sample[..., :-1]}

    def update_representation(self, sampler, progress=1.0):
        cfg = self.cfg
        tasks = sampler.task_ids()
        n = 2 * cfg.batch_per_task
        pairs = sampler.transitions(tasks, n)  # the first half anchors, the second their positives
        anchor = flat({k: v[:, : n // 2] for k, v in pairs.items()})
        positive = flat({k: v[:, n // 2 :] for k, v in pairs.items()})
        task_ids = torch.as_tensor(tasks).repeat_interleave(n // 2)
        negative = self.negatives(anchor, task_ids)
        enc = self.encoder.per_transition
        z = enc(anchor["obs"], anchor["act"], anchor["rew"], anchor["next_obs"])
        z_pos = enc(positive["obs"], positive["act"], positive["rew"], positive["next_obs"])
        z_neg = enc(negative["obs"], negative["act"], negative["rew"], negative["next_obs"])
        logits = torch.cat([(z * z_pos).sum(-1, keepdim=True), (z.unsqueeze(1) * z_neg).sum(-1)], 1) / cfg.temperature
        nce = F.cross_entropy(logits, torch.zeros(len(z), dtype=torch.long))
        loss, out = nce, {"corro_nce": nce.item()}
        if cfg.corro_relabel == "model":
            x = torch.cat([anchor["obs"], anchor["act"], self.task_embedding(task_ids)], -1)
            y = torch.cat([anchor["next_obs"] - anchor["obs"], anchor["rew"].unsqueeze(-1)], -1)
            nll = self.relabeller.nll(x, y)
            loss = loss + nll
            out["relabel_nll"] = nll.item()
        self.step(loss)
        return out
