"""What every method shares: the conservative SAC learner, and the `Method` base class whose
defaults (two phases, z from a context, SAC+CQL on real and imagined transitions) a method's
file overrides only where that method differs."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from bitr_agent.data import Sampler, encode, flat
from bitr_agent.model import Actor, Critics


class ConservativeSAC:
    """SAC conditioned on z with the CQL(H) penalty COMBO uses: one update from a batch whose
    first `n_real` rows are real transitions (the rest imagined), each row with its z."""

    def __init__(self, cfg, obs_dim: int, act_dim: int, z_dim: int):
        self.cfg, self.act_dim = cfg, act_dim
        self.actor = Actor(obs_dim + z_dim, act_dim, cfg.hidden)
        self.critics = Critics(obs_dim + act_dim + z_dim, cfg.hidden)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.log_alpha = torch.zeros(1, requires_grad=True)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=cfg.lr)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=cfg.lr)

    def modules(self) -> dict:
        return {name: getattr(self, name) for name in (
            "actor", "critics", "target_critics", "actor_optimizer", "critic_optimizer", "alpha_optimizer")}

    def update(self, batch: dict, n_real: int) -> dict:
        cfg = self.cfg
        s = torch.cat([batch["obs"], batch["z"]], -1)
        s_next = torch.cat([batch["next_obs"], batch["z"]], -1)
        alpha = self.log_alpha.exp().detach()

        with torch.no_grad():
            next_action, next_log_prob, _ = self.actor(s_next)
            q_next = torch.min(*self.target_critics(torch.cat([s_next, next_action], -1))) - alpha * next_log_prob
            target = batch["rew"] + cfg.gamma * (1 - batch["done"]) * q_next
        q1, q2 = self.critics(torch.cat([s, batch["act"]], -1))
        bellman = F.mse_loss(q1, target) + F.mse_loss(q2, target)

        # Conservative penalty (CQL(H), as COMBO uses it): push Q down on actions the data does
        # not support (uniform and policy actions, on real and imagined states), up on real data.
        n, k = len(s), cfg.cql_actions
        s_rep = s.repeat_interleave(k, 0)
        uniform = torch.rand(n * k, self.act_dim) * 2 - 1
        with torch.no_grad():
            policy_action, policy_log_prob, _ = self.actor(s_rep)
        log_density_uniform = self.act_dim * np.log(0.5)
        penalty = 0.0
        for q_real, q_fn in ((q1, self.critics.q1), (q2, self.critics.q2)):
            q_uniform = q_fn(torch.cat([s_rep, uniform], -1)).view(n, k) - log_density_uniform
            q_policy = q_fn(torch.cat([s_rep, policy_action], -1)).view(n, k) - policy_log_prob.view(n, k)
            pushed_down = torch.logsumexp(torch.cat([q_uniform, q_policy], 1), 1).mean()
            penalty = penalty + pushed_down - q_real[:n_real].mean()
        critic_loss = bellman + cfg.cql_weight * penalty
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()

        action, log_prob, _ = self.actor(s)
        actor_loss = (alpha * log_prob - torch.min(*self.critics(torch.cat([s, action], -1)))).mean()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()
        alpha_loss = -(self.log_alpha * (log_prob.detach() - self.act_dim)).mean()  # target entropy -|A|
        self.alpha_optimizer.zero_grad()
        alpha_loss.backward()
        self.alpha_optimizer.step()
        with torch.no_grad():
            for p, p_target in zip(self.critics.parameters(), self.target_critics.parameters()):
                p_target.lerp_(p, cfg.tau)
        return {"bellman": bellman.item(), "cql_penalty": penalty.item(), "actor": actor_loss.item(),
                "alpha": alpha.item(), "q": q1.mean().item()}


class Method:
    """A context-based offline meta-RL method in this harness, trained with `cfg`, the run's
    settings (`bitr_agent.config.Config`: the shared ones and each method's own, flat).

    Phase 1 (`cfg.wm_iterations` updates, skipped when `representation` is False) trains the
    networks `build` made with `update_representation`; phase 2 (`cfg.sac_iterations`) trains the
    shared conservative SAC on `policy_batch` with z from `task_z` (no gradient into the encoder).
    """

    representation = True  # has a phase 1
    loss_names: tuple[str, ...] = ()  # what update_representation reports (metrics.csv columns)
    encoder_kind = "set"  # the encoder the agent rebuilds: "set", "transition" or "none"
    config_class = None  # the method's own settings (a dataclass of its file), beside the shared ones
    fixed: dict = {}  # settings this method or variant fixes, whatever the profile or the command line
    agent_class = None  # the test-time agent; None: bitr_agent.agent.ContextAgent

    def __init__(self, cfg, obs_dim: int, act_dim: int, n_behaviours: int, n_tasks: int, task_dim: int = 0):
        self.cfg, self.obs_dim, self.act_dim = cfg, obs_dim, act_dim
        self.n_behaviours, self.n_tasks, self.task_dim = n_behaviours, n_tasks, task_dim
        self.nets = self.build()  # name -> nn.Module, trained in phase 1
        for name, net in self.nets.items():
            setattr(self, name, net)
        self.sac = ConservativeSAC(cfg, obs_dim, act_dim, self.z_dim)
        self.actor, self.critics = self.sac.actor, self.sac.critics
        self.log_alpha = self.sac.log_alpha
        parameters = [p for net in self.nets.values() for p in net.parameters()]
        self.wm_optimizer = torch.optim.Adam(parameters, lr=cfg.wm_lr) if parameters else None

    # ----- what a method defines
    @property
    def z_dim(self) -> int:
        return self.cfg.z_dim

    def build(self) -> dict:
        return {}

    def update_representation(self, sampler: Sampler, progress: float = 1.0) -> dict:
        raise NotImplementedError

    def step(self, loss) -> None:
        self.wm_optimizer.zero_grad()
        loss.backward()
        self.wm_optimizer.step()

    @torch.no_grad()
    def task_z(self, sampler: Sampler, tasks) -> torch.Tensor:
        context, _ = sampler.contexts(tasks)
        return self.z_of(context, tasks, sampler)

    def z_of(self, context: dict, tasks, sampler: Sampler) -> torch.Tensor:
        """z of each task's context set (tasks, K, ...) -> (tasks, z_dim)."""
        return encode(self.encoder, context)

    def imagine(self, sampler: Sampler, tasks, z):
        return None  # real data only

    def policy_batch(self, sampler: Sampler, tasks, z):
        cfg = self.cfg
        real = flat(sampler.transitions(tasks, cfg.batch_per_task))
        real["z"] = z.repeat_interleave(cfg.batch_per_task, 0)
        imagined = self.imagine(sampler, tasks, z) if cfg.imagined_per_task > 0 else None
        if imagined is None:
            return real, len(real["rew"])
        return {k: torch.cat([real[k], imagined[k]]) for k in real}, len(real["rew"])

    def update_policy(self, sampler: Sampler) -> dict:
        tasks = sampler.task_ids()
        z = self.task_z(sampler, tasks)
        batch, n_real = self.policy_batch(sampler, tasks, z)
        return self.sac.update(batch, n_real)

    def world_model_error(self, sampler: Sampler):
        return None  # no model of the dynamics

    # ----- bookkeeping
    def modules(self) -> dict:
        out = dict(self.nets)
        sac = self.sac.modules()
        out.update({k: sac[k] for k in ("actor", "critics", "target_critics")})
        if self.wm_optimizer is not None:
            out["wm_optimizer"] = self.wm_optimizer
        out.update({k: sac[k] for k in ("actor_optimizer", "critic_optimizer", "alpha_optimizer")})
        return out

    @torch.no_grad()
    def z_prior(self, sampler: Sampler) -> torch.Tensor:
        return torch.cat([self.task_z(sampler, sampler.task_ids()) for _ in range(8)]).mean(0)

    def export(self) -> dict:
        """What the test-time agent needs besides the actor: the encoder's kind, sizes, weights."""
        model = {"obs_dim": self.obs_dim, "act_dim": self.act_dim, "z_dim": self.z_dim, "hidden": self.cfg.hidden,
                 "encoder": self.encoder_kind, "width": self.cfg.width}
        out = {"model": model}
        if self.encoder_kind != "none":
            out["encoder"] = self.encoder.state_dict()
            model["normalise"] = bool(self.encoder.normalise)
        return out
