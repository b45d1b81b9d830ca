"""Small helpers every trainer shares: config dataclass -> command-line flags, atomic saves."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import typing
from pathlib import Path


def field_docs(cls) -> dict[str, str]:
    """Each field's documentation: the string literal right after it in the class body (the
    convention of CleanRL's and tyro's dataclasses), whitespace collapsed to one line. Fields
    inherited from dataclass bases keep their own class's text."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # defined where there is no source (an interactive session)
            continue
        body = tree.body[0].body
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def add_dataclass_flags(parser, cls, skip=(), defaults: bool = True, underscore_aliases: bool = False) -> None:
    """One flag per field of the dataclass `cls`: `--some-field VALUE`, its help the field's
    documentation (`field_docs`).

    bool fields get `--flag/--no-flag`; tuple fields take several values. With `defaults=False`
    every flag defaults to None, so the caller can tell which fields were set (overrides of a
    profile); with `defaults=True` the help names the default. `underscore_aliases` also
    accepts `--some_field`.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        flags = [f"--{field.name.replace('_', '-')}"]
        if underscore_aliases and "_" in field.name:
            flags.append(f"--{field.name}")
        kind = hints[field.name]
        default = field.default if defaults else None
        text = docs.get(field.name, "").replace("%", "%%") + (" (default: %(default)s)" if defaults else "")
        if kind is bool:
            action = parser.add_argument(*flags, action=argparse.BooleanOptionalAction, default=default,
                                         dest=field.name)
        elif typing.get_origin(kind) is tuple:
            action = parser.add_argument(*flags, type=typing.get_args(kind)[0], nargs="+", default=default,
                                         dest=field.name)
        else:
            action = parser.add_argument(*flags, type=kind, default=default, dest=field.name,
                                         metavar=kind.__name__.upper())
        action.help = text  # set after: Python 3.10's BooleanOptionalAction adds the default to a help it is given


def set_fields(args: argparse.Namespace, cls, skip=()) -> dict:
    """The fields of `cls` that were given on the command line (flags added with defaults=False)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if f.name not in skip and getattr(args, f.name, None) is not None}


def _torch_save(f, obj) -> None:
    import torch

    torch.save(obj, f)


def atomic_save(obj, path: str | Path, save_fn=_torch_save) -> None:
    """save_fn(file, obj) into a scratch file beside path (.<name>.*.tmp), then rename: a kill
    never leaves a half-written file."""
    from bitr_envs.files import atomic_write

    atomic_write(path, lambda f: save_fn(f, obj))
