"""The methods this harness trains, one short file each; `ALGOS` names them for `--algo`."""

from bitr_agent.methods.bitr import BITR, BITRMeanPool, BITRMLPWorldModel, BITRNoCQL, BITRNoInvariance, BITRNoWorldModel
from bitr_agent.methods.cbc import ContextBC
from bitr_agent.methods.corro import CORRO
from bitr_agent.methods.csro import CSRO
from bitr_agent.methods.floors import ContextFree, OracleTask
from bitr_agent.methods.focal import FOCAL
from bitr_agent.methods.unicorn import UNICORN

ALGOS = {
    "bitr": BITR,
    "bitr-no-invariance": BITRNoInvariance,
    "bitr-no-wm": BITRNoWorldModel,
    "bitr-no-cql": BITRNoCQL,
    "bitr-mlp-wm": BITRMLPWorldModel,
    "bitr-mean-pool": BITRMeanPool,
    "focal": FOCAL,
    "corro": CORRO,
    "csro": CSRO,
    "unicorn": UNICORN,
    "cbc": ContextBC,
    "context_free": ContextFree,
    "oracle_task": OracleTask,
}


def method(name: str):
    if name not in ALGOS:
        raise ValueError(f"unknown --algo {name!r}: one of {', '.join(ALGOS)}")
    return ALGOS[name]
