"""The result file of one evaluation run: its JSON schema, validation, and atomic writing.

A result file is data from strangers once it is submitted to the leaderboard: everything that
reads one validates it against `SCHEMA` first (`load_result`).
"""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA_VERSION = 1

_number = {"type": "number"}
_interval = {"type": "array", "items": _number, "minItems": 2, "maxItems": 2}
_summary = {
    "type": "object",
    "required": ["mean", "mean_ci95", "iqm", "iqm_ci95", "n"],
    "properties": {"mean": _number, "mean_ci95": _interval, "iqm": _number, "iqm_ci95": _interval,
                   "n": {"type": "integer", "minimum": 0}},
}
_nullable_summary = {"oneOf": [{"type": "null"}, _summary]}
_dataset = {
    "type": "object",
    "required": ["id", "sha256"],
    "properties": {"id": {"type": "string"}, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
}
_episode = {
    "type": "object",
    "required": ["task", "seed", "episode", "phase", "return", "length", "success"],
    "properties": {
        "task": {"type": "integer", "minimum": 0}, "seed": {"type": "integer"},
        "episode": {"type": "integer", "minimum": 0}, "phase": {"enum": ["explore", "score"]},
        "return": _number, "length": {"type": "integer", "minimum": 1},
        "success": {"type": ["boolean", "null"]},
    },
}
_unit = {
    "type": "object",
    "required": ["unit_id", "env_id", "split", "protocol", "status", "failure", "datasets",
                 "episodes", "scores", "summary", "first_episode", "success_rate"],
    "properties": {
        "unit_id": {"type": "string", "maxLength": 200},
        "env_id": {"type": "string", "maxLength": 100},
        "split": {"enum": ["train", "test", "ood"]},
        "protocol": {"enum": ["offline-iid", "offline-ood", "online"]},
        "status": {"enum": ["ok", "failed"]},
        "failure": {"type": ["string", "null"]},
        "datasets": {"type": "array", "items": _dataset},
        "episodes": {"type": "array", "items": _episode},
        # normalised score per (task, seed): mean over the scored episodes
        "scores": {"type": "array", "items": {"type": "array", "items": _number}},
        "summary": _nullable_summary,
        "first_episode": _nullable_summary,  # online: the very first episode's normalised score
        "success_rate": {"type": ["number", "null"]},
        "wall_seconds": _number,
    },
}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "BITR-Bench evaluation result",
    "type": "object",
    "required": ["schema_version", "submission", "suite", "versions", "hardware", "started",
                 "wall_seconds", "units", "aggregates"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "submission": {
            "type": "object",
            "required": ["name", "agent", "checkpoint", "agent_args", "privileged"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 100},
                "agent": {"type": "string", "maxLength": 300},
                "checkpoint": {"type": ["string", "null"], "maxLength": 500},
                "agent_args": {"type": "object"},
                "privileged": {"type": "boolean"},
            },
        },
        "suite": {
            "type": "object",
            "required": ["name", "fingerprint", "seeds", "units"],
            "properties": {
                "name": {"type": "string"}, "fingerprint": {"type": "string"},
                "seeds": {"type": "array", "items": {"type": "integer"}},
                "units": {"type": "array", "items": {"type": "string"}},
            },
        },
        "versions": {"type": "object", "additionalProperties": {"type": "string"}},
        "hardware": {"type": "object", "additionalProperties": {"type": ["string", "integer"]}},
        "started": {"type": "string"},
        "wall_seconds": _number,
        "units": {"type": "array", "items": _unit},
        "aggregates": {
            "type": "object",
            "properties": {
                "protocols": {"type": "object", "additionalProperties": _nullable_summary},
                "ood_drop": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
            },
        },
    },
}


class ResultError(ValueError):
    """A result file that does not validate; the message says where and why."""


def validate(result: dict) -> None:
    import jsonschema

    try:
        jsonschema.validate(result, SCHEMA)
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ResultError(f"invalid result at {where}: {err.message}") from None


def load_result(path: str | Path) -> dict:
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ResultError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(result, dict):
        raise ResultError(f"{path}: a result is a JSON object")
    validate(result)
    return result


