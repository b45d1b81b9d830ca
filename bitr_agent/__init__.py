"""BITR, the reference agent: a behaviour-invariant task encoder, a Transformer stochastic world
model, and conservative policy learning on imagined rollouts (see ../shared/PAPER.md).

    bitr-agent train --dataset bitr/point-robot-sparse/train-iid-lite-v0 --profile quick --out runs/bitr
    bitr evaluate --agent bitr_agent:load --checkpoint runs/bitr --suite lite --out runs/bitr/result.json
"""

from bitr_agent.agent import BITRAgent, CheckpointError, load

__all__ = ["BITRAgent", "CheckpointError", "load"]
