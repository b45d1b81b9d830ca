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

    @property
    def env_class(self):
        return load_env_creator(self.entry_point)


def _entries() -> list[EnvEntry]:
    point = "bitr_envs.point_robot:PointRobotEnv"
    point_vec = "bitr_envs.point_robot:PointRobotVectorEnv"
    loco = "bitr_envs.locomotion"
    mw = "bitr_envs.meta_world"
    rows = []
    for name, entry_point, horizon, has_sparse, vector in [
        ("PointRobot", point, 20, True, point_vec),
        ("CheetahVel", f"{loco}:CheetahVelEnv", 200, True, None),
        ("CheetahDir", f"{loco}:CheetahDirEnv", 200, False, None),
        ("AntDir", f"{loco}:AntDirEnv", 200, False, None),
        ("HopperParam", f"{loco}:HopperParamEnv", 200, True, None),
        ("WalkerParam", f"{loco}:WalkerParamEnv", 200, True, None),
        ("Reach", f"{mw}:ReachEnv", 500, True, None),
        ("Push", f"{mw}:PushEnv", 500, True, None),
    ]:
        variants = [False, True] if has_sparse else [False]
        for sparse in variants:
            rows.append(
                EnvEntry(
                    id=f"bitr/{name}{'Sparse' if sparse else ''}-v0",
                    entry_point=entry_point,
                    horizon=horizon,
                    family=name,
                    sparse=sparse,
                    vector_entry_point=vector,
                    kwargs={"sparse": True} if sparse else {},
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
        )
