import warnings

import pytest

import bitr_envs

ALL_IDS = list(bitr_envs.ENVS)


@pytest.fixture(autouse=True)
def _quiet_gymnasium_checker():
    # Gymnasium warns about unbounded Box observations (every MuJoCo env has them).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Box observation space (minimum|maximum).*")
        yield
