"""The floor and the ceiling around every method, with the same SAC+CQL learner:

- `context_free`: z is a constant (zeros): the policy cannot adapt; what a context must beat.
- `oracle_task`: z is the task's own feature vector, at training and at test time. Privileged:
  the evaluator hands its agent the task (`set_task`), which no ranked agent gets; a ceiling,
  never ranked. Evaluate it with `--agent bitr_agent:load_privileged`.
"""

from __future__ import annotations

import numpy as np
import torch

from bitr_agent.agent import ContextAgent
from bitr_agent.learner import Method


class ContextFree(Method):
    representation = False
    encoder_kind = "none"

    def z_of(self, context, tasks, sampler):
        return torch.zeros(len(tasks), self.z_dim)


class TaskFeaturesAgent(ContextAgent):
    """Acts with z = the features of the task the evaluator names; ignores any context."""

    privileged = True

    def set_task(self, features) -> None:
        self.z = torch.as_tensor(np.asarray(features), dtype=torch.float32)

    def reset(self) -> None:
        super().reset()
        self.z = None

    def _infer(self) -> None:
        pass

    def act(self, obs):
        if self.z is None:
            raise RuntimeError("oracle_task acts only when told the task: evaluate it with "
                               "--agent bitr_agent:load_privileged (set_task before act).")
        return super().act(obs)


class OracleTask(Method):
    representation = False
    encoder_kind = "none"
    agent_class = TaskFeaturesAgent

    @property
    def z_dim(self) -> int:
        return self.task_dim

    def z_of(self, context, tasks, sampler):
        return sampler.features(tasks)
