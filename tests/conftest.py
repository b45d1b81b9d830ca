import warnings

import pytest

import bitr_envs

ALL_IDS = list(bitr_envs.ENVS)


@pytest.fixture(autouse=True)
def _own_check_cache(tmp_path_factory, monkeypatch):
    """Each test starts with an empty cache of checked result files, never the user's."""
    monkeypatch.setenv("BITR_CACHE_DIR", str(tmp_path_factory.mktemp("bitr-cache")))


@pytest.fixture(autouse=True)
def _quiet_gymnasium_checker():
    # Gymnasium warns about unbounded Box observations (every MuJoCo env has them).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Box observation space (minimum|maximum).*")
        yield


def build_minari_root(tmp_path_factory, dataset_ids):
    """A scratch Minari root holding `dataset_ids`, built once: the body of a module's
    `minari_root` fixture (`yield from build_minari_root(tmp_path_factory, [...])`)."""
    from bitr_envs import datasets

    root = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        for dataset_id in dataset_ids:
            datasets.build(dataset_id)
        yield root
