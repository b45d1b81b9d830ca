"""Each env class documents its family in Gymnasium's sections (what `help(env.unwrapped)` shows),
and the documents agree with the code: the registry's task parameter and rewards, the horizon,
the task counts, the spaces and the arguments."""

import inspect
import pydoc
import re
from pathlib import Path

import gymnasium as gym
import pytest
from conftest import ALL_IDS

import bitr_envs

# Gymnasium's sections (as in its MuJoCo envs), with the task contract's own after the description
SECTIONS = ["Description", "Tasks", "Action Space", "Observation Space", "Rewards", "Starting State",
            "Episode End", "Arguments", "Version History"]


def sections(doc: str) -> dict[str, str]:
    """Section title -> its text, with runs of white space made one space (lines wrap anywhere)."""
    parts = re.split(r"^## (.+)$", inspect.cleandoc(doc), flags=re.M)
    return {title: " ".join(text.split()) for title, text in zip(parts[1::2], parts[2::2])}


def as_text(markdown: str) -> str:
    """A registry cell as it reads outside a Markdown table (`\\|` is a plain `|`)."""
    return markdown.replace("\\|", "|")


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_the_env_class_documents_its_family_in_gymnasiums_sections(env_id):
    row = bitr_envs.ENVS[env_id]
    env = gym.make(env_id)
    cls = type(env.unwrapped)
    found = sections(cls.__doc__ or "")
    assert list(found) == SECTIONS, f"{cls.__name__}'s docstring has the sections {list(found)}"

    assert f"The task parameter: {as_text(row.task_parameter)}" in found["Tasks"]
    counts = ", ".join(f"{row.num_tasks(split)} {split}" for split in cls.splits())
    assert f"Splits: {counts} tasks" in found["Tasks"]
    assert all(f"`{key}`" in found["Tasks"] for key in env.unwrapped.task)  # the task's keys in info
    assert f"`{env.action_space}`" in found["Action Space"]
    assert f"{env.observation_space.shape}, {env.observation_space.dtype})" in found["Observation Space"]
    assert f"`{env_id}`" in found["Rewards"] and as_text(row.reward) in found["Rewards"]
    assert f"truncated after {row.horizon} steps" in found["Episode End"]
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name != "self":
            assert (f"`**{name}`" if parameter.kind is parameter.VAR_KEYWORD else f"`{name}`") in found["Arguments"]
    assert f"* v{env_id.rsplit('-v', 1)[1]}:" in found["Version History"]
    env.close()


def test_help_on_the_env_shows_the_sections():
    env = gym.make("bitr/CheetahVel-v0")
    shown = pydoc.render_doc(env.unwrapped, renderer=pydoc.plaintext)
    assert all(f"## {title}" in shown for title in SECTIONS)


def test_the_family_table_of_docs_environments_has_the_registry_horizons():
    """docs/environments.md's table is written for people (one row per family, dense and sparse
    rewards side by side); its horizons are the code's."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "environments.md").read_text()
    table = text.split("## Families", 1)[1].split("\n\n", 2)[1]
    rows = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip("|"))] for line in table.splitlines()[2:]]
    horizons = {e.family: e.horizon for e in bitr_envs.ENVS.values()}
    named = set()
    for row in rows:
        for family in row[0].replace("-", "").split(", "):
            assert int(row[3]) == horizons[family], f"docs/environments.md: {family}'s horizon"
            named.add(family)
    assert named == set(horizons), "docs/environments.md's table misses a family"
