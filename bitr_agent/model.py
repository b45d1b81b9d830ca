"""Every network of the agents in one plain module (nanoGPT-style).

- `TaskEncoder`: a set of context transitions (s, a, r, s') -> task variable z. Each transition
  is embedded on its own, then one learned query attends over the set, so the few transitions
  that carry the task (a sparse reward) can dominate, in any number and any order.
- `WorldModel`: a small causal Transformer over the recent history of (state, previous reward,
  action) tokens, conditioned on z, predicting a Gaussian over the next state change and the
  reward, and a termination probability.
- `Actor`, `Critics`: SAC's tanh-Gaussian policy and twin Q-functions, conditioned on z.
- `BehaviourAdversary` with `reverse_gradient`: tries to tell the behaviour policy from z; the
  encoder is trained against it, which keeps the behaviour policy out of z.
- `TransitionEncoder`: the peers' encoder: one MLP per transition, z = the mean over the context.
- `GaussianMLP`, `MLPDynamicsEnsemble`: a Gaussian over a target given an input (decoders,
  the variational net of a mutual-information bound), and an ensemble of MLP dynamics models.
- `TanhGaussianActor`, `EnsembleLinear`: the behaviour-policy trainer's actor (its snapshot
  format is read in numpy by the dataset builder) and a batched stack of linear layers.
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
    """With `normalise`, z is L2-normalised: it lives on the unit sphere."""

    def __init__(self, obs_dim: int, act_dim: int, z_dim: int, width: int, normalise: bool = False):
        super().__init__()
        self.normalise = normalise
        self.embed = mlp(2 * obs_dim + act_dim + 1, width, width)
        self.query = nn.Parameter(torch.randn(1, 1, width) / math.sqrt(width))
        self.attend = nn.MultiheadAttention(width, num_heads=4, batch_first=True)
        self.out = mlp(width, width, z_dim, layers=1)

    def forward(self, obs, act, rew, next_obs, mask=None):
        """Inputs (B, K, ...) for B sets of K transitions; mask (B, K) True where padding."""
        x = torch.cat([obs, act, rew.unsqueeze(-1), next_obs - obs], dim=-1)
        h = self.embed(x)
        pooled, _ = self.attend(self.query.expand(len(h), -1, -1), h, h, key_padding_mask=mask)
        z = self.out(pooled.squeeze(1))
        return F.normalize(z, dim=-1) if self.normalise else z


class TransitionEncoder(nn.Module):
    """One deterministic MLP per transition; a context's z is the mean of its transitions' z.
    With `normalise`, each transition's z is L2-normalised before the mean."""

    def __init__(self, obs_dim: int, act_dim: int, z_dim: int, width: int, normalise: bool = False):
        super().__init__()
        self.normalise = normalise
        self.net = mlp(2 * obs_dim + act_dim + 1, width, z_dim)

    def per_transition(self, obs, act, rew, next_obs):
        z = self.net(torch.cat([obs, act, rew.unsqueeze(-1), next_obs - obs], dim=-1))
        return F.normalize(z, dim=-1) if self.normalise else z

    def forward(self, obs, act, rew, next_obs, mask=None):
        z = self.per_transition(obs, act, rew, next_obs)
        if mask is None:
            return z.mean(-2)
        keep = (~mask).unsqueeze(-1).float()
        return (z * keep).sum(-2) / keep.sum(-2).clamp(min=1)


def distance_metric_loss(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """FOCAL's distance metric over all pairs of the rows of z (N, d) with task labels (N,):
    same task sqrt(mean sq. distance + 1e-3) (pulled together), different tasks
    1 / (mean sq. distance + 0.1) (pushed apart); each averaged over its pairs."""
    d2 = ((z.unsqueeze(0) - z.unsqueeze(1)) ** 2).mean(-1)
    pair = torch.triu(torch.ones_like(d2, dtype=torch.bool), diagonal=1)
    same = (labels.unsqueeze(0) == labels.unsqueeze(1)) & pair
    different = (labels.unsqueeze(0) != labels.unsqueeze(1)) & pair
    return torch.sqrt(d2[same] + 1e-3).mean() + (1.0 / (d2[different] + 0.1)).mean()


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


class GaussianMLP(nn.Module):
    """x -> a diagonal Gaussian over y: mean and log-std (clamped)."""

    def __init__(self, in_dim: int, out_dim: int, width: int, layers: int = 2):
        super().__init__()
        self.net = mlp(in_dim, width, 2 * out_dim, layers)

    def forward(self, x):
        mean, log_std = self.net(x).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def nll(self, x, y):
        mean, log_std = self(x)
        return (0.5 * ((y - mean) / log_std.exp()) ** 2 + log_std).sum(-1).mean()


def club_upper_bound(mean, log_std, z) -> torch.Tensor:
    """CLUB's estimate of I(x; z) from a variational Gaussian q(z | x) = N(mean, std) evaluated on
    N paired samples: E_joint[log q(z_i | x_i)] - E_i E_j[log q(z_j | x_i)] (normalisers cancel).
    An upper bound on the mutual information when q is close to the true conditional."""
    inv_var = torch.exp(-2 * log_std)
    joint = -0.5 * ((z - mean) ** 2 * inv_var).sum(-1)
    # mean over j of (z_j - mean_i)^2, in closed form per dimension
    z_mean, z_sq = z.mean(0, keepdim=True), (z ** 2).mean(0, keepdim=True)
    marginal = -0.5 * ((z_sq - 2 * mean * z_mean + mean ** 2) * inv_var).sum(-1)
    return (joint - marginal).mean()


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


class EnsembleLinear(nn.Module):
    """`n` independent linear layers applied in one batched matmul: input (n, B, i) -> (n, B, o)."""

    def __init__(self, n: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1 / math.sqrt(in_dim)  # nn.Linear's default init
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x):
        return torch.baddbmm(self.bias, x, self.weight)


class MLPDynamicsEnsemble(nn.Module):
    """`members` MLPs (s, a, z) -> a Gaussian over (s' - s, r) and a termination logit, run as one
    batched stack (MBPO/COMBO-style). Each member sees the same inputs; they differ by their init."""

    def __init__(self, obs_dim: int, act_dim: int, z_dim: int, width: int, members: int):
        super().__init__()
        self.obs_dim, self.members = obs_dim, members
        self.net = nn.Sequential(
            EnsembleLinear(members, obs_dim + act_dim + z_dim, width), nn.ReLU(),
            EnsembleLinear(members, width, width), nn.ReLU(),
            EnsembleLinear(members, width, 2 * (obs_dim + 1) + 1),
        )

    def forward(self, obs, act, z):
        """(B, ...) inputs -> per member (members, B, ...): mean, log-std of (ds, r), done logit."""
        x = torch.cat([obs, act, z], -1).expand(self.members, -1, -1)
        out = self.net(x)
        n = self.obs_dim + 1
        return out[..., :n], out[..., n : 2 * n].clamp(LOG_STD_MIN, LOG_STD_MAX), out[..., -1]

    def loss(self, obs, act, rew, next_obs, done, z):
        mean, log_std, done_logit = self(obs, act, z)
        target = torch.cat([next_obs - obs, rew.unsqueeze(-1)], -1)
        nll = 0.5 * (((target - mean) / log_std.exp()) ** 2) + log_std
        return nll.mean() + F.binary_cross_entropy_with_logits(done_logit, done.expand_as(done_logit))


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


class TanhGaussianActor(nn.Module):
    """The behaviour-policy trainer's tanh-Gaussian policy on [obs, task features]; actions in
    [-1, 1] (env action = a * scale + bias). Its state dict (fc1, fc2, fc_mean, fc_logstd,
    action_scale, action_bias) is what a behaviour snapshot stores, array for array, and
    `bitr_envs.datasets.behaviours.MLPPolicy` runs it in numpy. It differs from `Actor` (separate
    mean and log-std heads, a tanh-squashed log-std) because its snapshots and checkpoints are
    in use; `Actor` keeps the agents' trained weights reproducible."""

    def __init__(self, in_dim: int, act_dim: int, hidden: int, action_scale, action_bias):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc_mean = nn.Linear(hidden, act_dim)
        self.fc_logstd = nn.Linear(hidden, act_dim)
        self.register_buffer("action_scale", torch.as_tensor(action_scale, dtype=torch.float32))
        self.register_buffer("action_bias", torch.as_tensor(action_bias, dtype=torch.float32))

    def forward(self, x):
        h = F.relu(self.fc2(F.relu(self.fc1(x))))
        log_std = torch.tanh(self.fc_logstd(h))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)
        return self.fc_mean(h), log_std

    def sample(self, x):
        """A reparameterised action in [-1, 1] and its log-probability."""
        mean, log_std = self(x)
        std = log_std.exp()
        u = mean + std * torch.randn_like(mean)
        action = torch.tanh(u)
        # log N(u; mean, std) - log(1 - tanh(u)^2), the latter written stably.
        log_prob = (-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return action, log_prob

    def deterministic(self, x):
        return torch.tanh(self(x)[0])

    def snapshot_arrays(self, obs_dim: int) -> dict:
        """The actor as plain float32 arrays plus obs_dim: the behaviour-snapshot format."""
        import numpy as np

        arrays = {k: v.detach().numpy().astype(np.float32) for k, v in self.state_dict().items()}
        arrays["obs_dim"] = np.array(obs_dim, dtype=np.int64)
        return arrays
