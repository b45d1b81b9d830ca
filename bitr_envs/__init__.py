"""BITR-Bench meta-task families, registered with Gymnasium under the `bitr/` namespace.

    import gymnasium as gym
    import bitr_envs  # registers the ids (or use gym.make("bitr_envs:bitr/...") without it)

    env = gym.make("bitr/CheetahVelSparse-v0", split="test")
    obs, info = env.reset(seed=0, options={"task": 3})   # info["task_id"] == 3
"""

from bitr_envs.core import SPLITS, MetaTaskMixin
from bitr_envs.registry import ENVS, register_all


def tasks(env_id: str, split: str = "train"):
    """The task parameters of one split of `env_id`, without building the env."""
    from bitr_envs.registry import entry

    return entry(env_id).env_class.split_tasks(split)


register_all()

__all__ = ["ENVS", "SPLITS", "MetaTaskMixin", "tasks"]
