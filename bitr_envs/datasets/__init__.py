"""BITR's offline datasets: Minari datasets built from the recipe cards in `bitr_envs/datasets/cards/`.

    from bitr_envs import datasets
    datasets.build("bitr/point-robot-sparse/train-iid-lite-v0")   # or: bitr datasets build ID
    data = datasets.load("bitr/point-robot-sparse/train-iid-lite-v0")
    task3 = datasets.load("bitr/point-robot-sparse/test-iid-lite-v0", tasks=[3])  # reads task 3 only

Each is also a plain Minari dataset: `minari.load_dataset(ID)` works, and per-step infos carry
`task_id` and `behaviour`.
"""

from bitr_envs.datasets.loader import DatasetError, OfflineData, TaskData, load, verify
from bitr_envs.datasets.recipes import all_recipes, recipe
from bitr_envs.datasets.shards import BuildProgress, build

__all__ = ["BuildProgress", "DatasetError", "OfflineData", "TaskData", "all_recipes", "build", "load", "recipe",
           "verify"]
