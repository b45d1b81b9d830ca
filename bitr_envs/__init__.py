"""BITR-Bench meta-task families, registered with Gymnasium under the `bitr/` namespace.

    import gymnasium as gym
    import bitr_envs  # registers the ids (or use gym.make("bitr_envs:bitr/...") without it)

    env = gym.make("bitr/CheetahVelSparse-v0", split="test")
    obs, info = env.reset(seed=0, options={"task": 3})   # info["task_id"] == 3

    env, train, context = bitr_envs.make_env_and_datasets("bitr/CheetahVel-v0", split="test")
"""

from bitr_envs.core import SPLITS, MetaTaskMixin
from bitr_envs.registry import ENVS, register_all


def tasks(env_id: str, split: str = "train"):
    """The task parameters of one split of `env_id`, without building the env."""
    from bitr_envs.registry import entry

    return entry(env_id).env_class.split_tasks(split)


def make_env_and_datasets(env_id: str, split: str = "test", profile: str = "lite", **env_kwargs):
    """The env of `env_id` on `split`, the family's training data and `split`'s offline context,
    as OGBench's `make_env_and_datasets` gives an env with its datasets:

        env, train, context = bitr_envs.make_env_and_datasets("bitr/CheetahVel-v0", split="test")
        train             # datasets.load("bitr/cheetah-vel/train-iid-lite-v0"): what to train on
        context["iid"]    # ...test-iid-lite-v0: context from the training data's behaviours
        context["ood"]    # ...test-ood-lite-v0: context from held-out behaviours
        context["other"]  # ...test-other-lite-v0: context from behaviours pursuing another task

    `train` and the context are `bitr_envs.datasets.load` objects (`OfflineData`), read whole
    (`datasets.load(id, tasks=[...])` reads some tasks only); `env_kwargs` go to `gym.make` (e.g.
    `task="random"`). The datasets must be built (or downloaded) first: a missing one is a
    `DatasetError` that gives the command building them all.
    """
    import gymnasium as gym

    from bitr_envs.datasets import DatasetError, load
    from bitr_envs.datasets.ids import POOLS, DatasetId
    from bitr_envs.datasets.recipes import card
    from bitr_envs.datasets.storage import datasets_root, exists
    from bitr_envs.registry import entry

    entry(env_id).num_tasks(split)  # an unknown id or split: a ValueError naming those that exist
    profiles = card(env_id).profiles
    if profile not in profiles:
        raise ValueError(f"Unknown profile {profile!r}: the datasets of {env_id} come in the profiles "
                         f"{', '.join(profiles)}.")
    train_id = str(DatasetId.of(env_id, "train", "iid", profile))
    context_ids = {pool: str(DatasetId.of(env_id, split, pool, profile)) for pool in POOLS}
    wanted = list(dict.fromkeys([train_id, *context_ids.values()]))
    missing = [d for d in wanted if not exists(d)]
    if missing:
        raise DatasetError(
            f"{len(missing)} of the datasets of {env_id} ({split!r} split, profile {profile!r}) are not in the local "
            f"Minari root ({datasets_root()}): {', '.join(missing)}. Build them with `bitr datasets build "
            f"{' '.join(missing)}`, or download them with `bitr datasets download {' '.join(missing)} --remote "
            "file:///path/to/mirror`."
        )
    loaded = {d: load(d) for d in wanted}  # split="train": the iid context is the training data, read once
    return gym.make(env_id, split=split, **env_kwargs), loaded[train_id], {p: loaded[d] for p, d in context_ids.items()}


register_all()

__all__ = ["ENVS", "SPLITS", "MetaTaskMixin", "make_env_and_datasets", "tasks"]
