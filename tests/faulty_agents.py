"""Agents that misbehave on purpose, for the evaluator's isolation tests.

Each behaves like the random agent in the online protocol and misbehaves once it has been given
offline context, so one run shows both: offline units fail with a reason, the online unit and
the run itself complete.
"""

import os
import time

import numpy as np

from bitr_eval.agents import RandomAgent


class FaultyAgent(RandomAgent):
    def __init__(self, fault: str, **kwargs):
        super().__init__(**kwargs)
        self.fault = fault
        self.offline = False

    def set_context(self, transitions):
        self.offline = True

    def act(self, obs):
        action = super().act(obs)
        if not self.offline:
            return action
        if self.fault == "raise":
            raise RuntimeError("policy network exploded")
        if self.fault == "nan":
            return np.full_like(action, np.nan)
        if self.fault == "wrong_shape":
            return np.zeros(action.shape[0] + 1)
        if self.fault == "out_of_bounds":
            return action + 10.0
        if self.fault == "hang":
            time.sleep(3600)
        if self.fault == "crash":
            os._exit(3)
        return action


def make(fault: str = "none", **kwargs):
    return FaultyAgent(fault, **kwargs)


class ResetCounter(RandomAgent):
    """Counts its resets and says so on stdout, as an agent that infers the task from the count
    of resets would: each task's fresh process must count only that task's seeds."""

    resets = 0

    def reset(self):
        super().reset()
        ResetCounter.resets += 1
        print(f"pid {os.getpid()} reset {ResetCounter.resets}", flush=True)  # pids repeat in a PID namespace


def counter(**kwargs):
    return ResetCounter(**kwargs)
