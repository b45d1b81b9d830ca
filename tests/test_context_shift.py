"""The other-task context: behaviours given another task of the split than the env runs.

What a user relies on: such a behaviour acts exactly as its policy does when given the other
task; the task it pursued is recorded on every transition and is never the env's own; the
pool's episodes end where the pursued task's goal is; and adding the pool changed no earlier
dataset (their recipe fingerprints leave it out).
"""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from conftest import build_minari_root

import bitr_envs
from bitr_envs import datasets
from bitr_envs.datasets.behaviours import Behaviour, MLPPolicy
from bitr_envs.datasets.collect import Job, collect
from bitr_envs.datasets.recipes import RecipeCard, recipe, recipes_dir
from bitr_envs.datasets.shards import dataset_jobs, pursued_task
from bitr_eval.suites import CONTEXT_KEYS, suite, unit_context

OTHER = "bitr/point-robot-sparse/test-other-tiny-v0"
IID = "bitr/point-robot-sparse/test-iid-tiny-v0"


@pytest.fixture(scope="module")
def minari_root(tmp_path_factory):
    yield from build_minari_root(tmp_path_factory, [OTHER, IID])


def test_a_behaviour_pursuing_task_j_acts_as_its_policy_given_task_j():
    policy = MLPPolicy.load(recipes_dir() / "policies" / "cheetah-vel" / "step_100000.npz")
    behaviours = {"expert": Behaviour("expert", 0, policy.act)}  # no noise: the policy's own actions
    env_class = bitr_envs.registry.entry("bitr/CheetahVel-v0").env_class
    features = np.stack([env_class.task_features(t) for t in env_class.split_tasks("test")])
    [episode] = collect("bitr/CheetahVel-v0", "test", [Job(task=2, behaviour="expert", seed=5, pursued=7)],
                        behaviours)
    space = gym.make("bitr/CheetahVel-v0").action_space
    expected = np.clip(policy.act(episode.observations[:-1], features[7]), space.low, space.high)
    np.testing.assert_array_equal(episode.actions, expected.astype(episode.actions.dtype))
    assert not np.array_equal(episode.actions, np.clip(policy.act(episode.observations[:-1], features[2]),
                                                        space.low, space.high))


def test_the_pursued_task_is_recorded_on_every_transition_and_is_never_the_envs(minari_root):
    data = datasets.load(OTHER)
    assert data.pool == "other"
    for task, transitions in enumerate(data.tasks):
        assert len(transitions.pursued) == len(transitions)
        assert (transitions.pursued != task).all()
        assert ((0 <= transitions.pursued) & (transitions.pursued < len(data.tasks))).all()
    other_names = {"other-expert", "other-medium"}
    assert other_names <= set(data.behaviour_names)
    # the own-task pools record the env's task as the pursued one, and do not list the other behaviours
    own = datasets.load(IID)
    assert all((t.pursued == task).all() for task, t in enumerate(own.tasks))
    assert not other_names & set(own.behaviour_names)
    assert own.behaviour_names == data.behaviour_names[:len(own.behaviour_names)]  # one label per behaviour


def test_pursued_tasks_are_drawn_uniformly_among_the_others_from_the_episode_seed():
    drawn = [pursued_task(3, 10, seed) for seed in range(4000)]
    assert 3 not in drawn
    counts = np.bincount(drawn, minlength=10)
    assert counts[3] == 0 and counts.min(initial=4000, where=np.arange(10) != 3) > 350  # 444 expected each
    assert drawn == [pursued_task(3, 10, seed) for seed in range(4000)]  # fixed by the seed
    with pytest.raises(ValueError, match="two tasks or more"):
        pursued_task(0, 1, 0)
    jobs = dataset_jobs(recipe("bitr/cheetah-dir/test-other-lite-v0"))  # two tasks: the other direction
    assert {(j.task, j.pursued) for j in jobs} == {(0, 1), (1, 0)}


def test_the_other_task_experts_episodes_end_at_the_pursued_goal(minari_root):
    data = datasets.load(OTHER)
    goals = np.array([t["goal"] for t in bitr_envs.tasks("bitr/PointRobotSparse-v0", "test")])
    expert = data.behaviour_names.index("other-expert")
    ends = 0
    for task, transitions in enumerate(data.tasks):
        last = np.flatnonzero((transitions.terminals | transitions.timeouts) & (transitions.behaviours == expert))
        for i in last:
            end = transitions.next_observations[i]
            assert np.linalg.norm(end - goals[transitions.pursued[i]]) <= 0.2  # in the pursued goal's region
            assert np.linalg.norm(end - goals[task]) > np.linalg.norm(end - goals[transitions.pursued[i]])
            ends += 1
    assert ends == 4 * len(data.tasks)  # half of the 8 tiny episodes per task


def test_the_agent_never_sees_who_collected_its_context_or_what_it_pursued(minari_root):
    unit = next(u for u in suite("tiny-v1").units if u.protocol == "offline-other-task")
    assert unit.context_dataset == OTHER
    context = unit_context(unit, datasets.load(OTHER), 0, np.random.default_rng(0))
    assert tuple(sorted(context)) == tuple(sorted(CONTEXT_KEYS))


def test_the_other_task_pool_leaves_the_other_datasets_fingerprints_as_they_were():
    """A dataset of another pool hashes its card as if the other-task entries were not there:
    adding them kept every earlier dataset's recipe hash, and so its pinned checksums."""
    r = recipe(IID)
    raw = dict(r.card.raw, pools={k: v for k, v in r.card.raw["pools"].items() if k != "other"},
               behaviours={k: v for k, v in r.card.raw["behaviours"].items() if not k.startswith("other-")})
    stripped = dataclasses.replace(r.card, raw=raw)
    assert dataclasses.replace(r, card=stripped).fingerprint() == r.fingerprint()
    assert dataclasses.replace(recipe(OTHER), card=stripped).fingerprint() != recipe(OTHER).fingerprint()


@pytest.mark.parametrize("change, message", [
    (("iid = { random = 0.25,", "iid = { other-expert = 0.1, random = 0.25,"), "misplaced"),
    (('other-expert = { policy = "point-robot:goal-seeker", noise = 0.1, pursue = "another-task" }',
      'other-expert = { policy = "point-robot:goal-seeker", noise = 0.1, pursue = "a-task" }'), "pursue is one of"),
    (("[behaviours]\n", '[behaviours]\nfirst = { policy = "random", pursue = "another-task" }\n'), "come after"),
])
def test_a_card_that_misplaces_an_other_task_behaviour_is_refused(tmp_path, change, message):
    card = (recipes_dir() / "point-robot.toml").read_text()
    assert change[0] in card
    (tmp_path / "card.toml").write_text(card.replace(change[0], change[1]))
    with pytest.raises(ValueError, match=message):
        RecipeCard.load(tmp_path / "card.toml")
