"""BITR's networks in one plain module (nanoGPT-style).

- `TaskEncoder`: a set of context transitions (s, a, r, s') -> task variable z. Each transition
  is embedded on its own, then one learned query attends over the set, so the few transitions
  that carry the task (a sparse reward) can dominate, in any number and any order.
- `WorldModel`: a small causal Transformer over the recent history of (state, previous reward,
  action) tokens, conditioned on z, predicting a Gaussian over the next state change and the
  reward, and a termination probability.
- `Actor`, `Critics`: SAC's tanh-Gaussian policy and twin Q-functions, conditioned on z.
- `BehaviourAdversary` with `reverse_gradient`: tries to tell the behaviour policy from z; the
  encoder is trained against it, which keeps the behaviour policy out of z.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 2) -> nn.Sequential:
    dims = [in_dim] + [hidden] * layers
    modules: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        modules += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*modules, nn.Linear(dims[-1], out_dim))


# ----- task encoder ---------------------------------------------------------------------------
class TaskEncoder(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, z_dim: int, width: int):
        super().__init__()
        self.embed = mlp(2 * obs_dim + act_dim + 1, width, width)
        self.query = nn.Parameter(torch.randn(1, 1, width) / math.sqrt(width))
        self.attend = nn.MultiheadAttention(width, num_heads=4, batch_first=True)
        self.out = mlp(width, width, z_dim, layers=1)

    def forward(self, obs, act, rew, next_obs, mask=None):
        """Inputs (B, K, ...) for B sets of K transitions; mask (B, K) True where padding."""
        x = torch.cat([obs, act, rew.unsqueeze(-1), next_obs - obs], dim=-1)
        h = self.embed(x)
        pooled, _ = self.attend(self.query.expand(len(h), -1, -1), h, h, key_padding_mask=mask)
        return self.out(pooled.squeeze(1))


def info_nce(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Two views of each of B tasks: view a must pick its own task's view b among all B."""
    za, zb = F.normalize(z_a, dim=-1), F.normalize(z_b, dim=-1)
    logits = za @ zb.T / temperature
    labels = torch.arange(len(za), device=za.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity going forward; going back, the gradient is flipped and scaled."""
    return _ReverseGradient.apply(x, scale)


class BehaviourAdversary(nn.Module):
    def __init__(self, z_dim: int, n_behaviours: int, width: int):
        super().__init__()
        self.net = mlp(z_dim, width, n_behaviours)

    def forward(self, z):
        return self.net(z)


# ----- world model ----------------------------------------------------------------------------
class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class WorldModel(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, z_dim: int, width: int, layers: int, heads: int, context: int):
        super().__init__()
        self.obs_dim = obs_dim
        self.token = nn.Linear(obs_dim + 1 + act_dim, width)  # (s_t, r_{t-1}, a_t)
        self.task = nn.Linear(z_dim, width)
        self.position = nn.Parameter(torch.zeros(1, context, width))
        self.blocks = nn.Sequential(*[Block(width, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, 2 * (obs_dim + 1) + 1)  # mean and log-std of (ds, r), done logit

    def forward(self, obs, prev_rew, act, z):
        """(B, T, ...) histories and z (B, z_dim) -> Gaussian over (s_{t+1} - s_t, r_t), done logit."""
        T = obs.shape[1]
        x = self.token(torch.cat([obs, prev_rew.unsqueeze(-1), act], -1))
        x = x + self.position[:, -T:] + self.task(z).unsqueeze(1)
        out = self.head(self.ln(self.blocks(x)))
        n = self.obs_dim + 1
        mean, log_std, done_logit = out[..., :n], out[..., n : 2 * n], out[..., -1]
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX), done_logit

    def loss(self, obs, prev_rew, act, rew, next_obs, done, z):
        mean, log_std, done_logit = self(obs, prev_rew, act, z)
        target = torch.cat([next_obs - obs, rew.unsqueeze(-1)], -1)
        nll = 0.5 * (((target - mean) / log_std.exp()) ** 2) + log_std
        return nll.mean() + F.binary_cross_entropy_with_logits(done_logit, done)


# ----- SAC ------------------------------------------------------------------------------------
class Actor(nn.Module):
    def __init__(self, in_dim: int, act_dim: int, hidden: int):
        super().__init__()
        self.trunk = mlp(in_dim, hidden, 2 * act_dim)

    def forward(self, x):
        """A reparameterised tanh-Gaussian sample in [-1, 1], its log-probability, and the mode."""
        mean, log_std = self.trunk(x).chunk(2, dim=-1)
        std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        pre = mean + std * torch.randn_like(mean)
        action = torch.tanh(pre)
        log_prob = (torch.distributions.Normal(mean, std).log_prob(pre) - torch.log1p(-action.pow(2) + 1e-6)).sum(-1)
        return action, log_prob, torch.tanh(mean)


class Critics(nn.Module):
    """Two Q-networks, for the clipped double-Q target."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.q1, self.q2 = mlp(in_dim, hidden, 1), mlp(in_dim, hidden, 1)

    def forward(self, x):
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)
