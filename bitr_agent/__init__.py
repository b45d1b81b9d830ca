"""BITR, the reference agent, and its peers (FOCAL, CORRO, CSRO, UNICORN, context-conditioned BC,
and the context-free floor and task-told ceiling) in one harness: shared networks, data, learner
and training loop; one short file per method in `bitr_agent/methods/`.

    bitr-agent train --algo bitr --dataset bitr/point-robot-sparse/train-iid-lite-v0 --profile quick --out runs/bitr
    bitr evaluate --agent bitr_agent:load --checkpoint runs/bitr --suite quick --out runs/bitr/result-quick.json \
        --name 'bitr seed 0'
"""

from bitr_agent.agent import CheckpointError, ContextAgent, load, load_privileged

__all__ = ["CheckpointError", "ContextAgent", "load", "load_privileged"]
