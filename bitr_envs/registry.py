"""The registered meta-task ids: one row per id, registered with Gymnasium on import."""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator


@dataclass(frozen=True)
class EnvEntry:
    id: str
    entry_point: str
    horizon: int
    family: str
    sparse: bool = False
    vector_entry_point: str | None = None
    kwargs: dict = field(default_factory=dict)
    task_parameter: str = ""  # for people: what varies between tasks, and its ood range
    reward: str = ""  # for people: the reward formula
    check_env: bool = True  # Gymnasium's passive checker on every make (see register_all)

    @property
    def env_class(self):
        return load_env_creator(self.entry_point)

    def num_tasks(self, split: str) -> int:
        """The number of tasks of `split` (a ValueError names the splits that exist)."""
        return len(self.env_class.split_tasks(split))


def _entries() -> list[EnvEntry]:
    point = "bitr_envs.point_robot:PointRobotEnv"
    point_vec = "bitr_envs.point_robot:PointRobotVectorEnv"
    loco = "bitr_envs.locomotion"
    mw = "bitr_envs.meta_world"
    param = "mass, inertia, friction × 1.5^u, damping × 1.3^u, u ~ U[−3, 3] per element; ood \\|u\\| ~ U[3, 4]"
    param_sparse = "d = \\|v_x − 1.5\\|: 0.8 − d if d ≤ 0.5 else 0, − 1e-3‖a‖²"
    meta_world = "goal: Meta-World ML1 train goals; ood: ML1 test goals"
    rows = []
    # name, entry point, horizon, vector entry point, task parameter, dense reward, sparse reward
    for name, entry_point, horizon, vector, parameter, dense, sparse_reward in [
        ("PointRobot", point, 20, point_vec, "goal (cos t, sin t), t ~ U[0, π]; ood t ~ U[π, 2π]",
         "−‖p − g‖", "1 if ‖p − g‖ ≤ 0.2 else 0"),
        ("CheetahVel", f"{loco}:CheetahVelEnv", 200, None, "target speed v ~ U[0, 3]; ood U[3, 4]",
         "−\\|v_x − v\\| − 0.05‖a‖²",
         "2 − \\|v_x − v\\| − 0.05‖a‖² within 0.5 of v, else −0.05‖a‖²"),
        ("CheetahDir", f"{loco}:CheetahDirEnv", 200, None, "direction d ∈ {−1, +1} (both tasks in both splits)",
         "d·v_x − 0.05‖a‖²", None),
        ("AntDir", f"{loco}:AntDirEnv", 200, None, "direction t ~ U[0, 2π]",
         "(v_x, v_y)·(cos t, sin t) + Ant-v5 healthy bonus − control cost", None),
        ("HopperParam", f"{loco}:HopperParamEnv", 200, None, param, "Hopper-v5", param_sparse),
        ("WalkerParam", f"{loco}:WalkerParamEnv", 200, None, param, "Walker2d-v5", param_sparse),
        ("Reach", f"{mw}:ReachEnv", 500, None, meta_world, "Meta-World v3 reward", "success (0/1) each step"),
        ("Push", f"{mw}:PushEnv", 500, None, meta_world, "Meta-World v3 reward", "success (0/1) each step"),
    ]:
        for sparse in ([False, True] if sparse_reward else [False]):
            rows.append(
                EnvEntry(
                    id=f"bitr/{name}{'Sparse' if sparse else ''}-v0",
                    entry_point=entry_point,
                    horizon=horizon,
                    family=name,
                    sparse=sparse,
                    vector_entry_point=vector,
                    kwargs={"sparse": True} if sparse else {},
                    task_parameter=parameter,
                    reward=sparse_reward if sparse else dense,
                    # Meta-World's observation keeps the hidden goal's dims at exactly 0, which
                    # the passive checker warns about on every make; tests run the full check_env.
                    check_env=entry_point.split(":")[0] != mw,
                )
            )
    return rows


ENVS: dict[str, EnvEntry] = {e.id: e for e in _entries()}


def entry(env_id: str) -> EnvEntry:
    """The registry row of `env_id`, or a ValueError listing the ids that exist."""
    if env_id not in ENVS:
        raise ValueError(f"Unknown BITR env id {env_id!r}. Known ids: {', '.join(ENVS)}.")
    return ENVS[env_id]


def register_all() -> None:
    for e in ENVS.values():
        if e.id in gym.registry:
            continue
        gym.register(
            id=e.id,
            entry_point=e.entry_point,
            vector_entry_point=e.vector_entry_point,
            max_episode_steps=e.horizon,
            kwargs=dict(e.kwargs),
            disable_env_checker=not e.check_env,
        )
