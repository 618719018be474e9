"""A job's params from the command line: flags, ``--param KEY=VALUE`` and ``--params-file FILE``.

Every param of a job kind is reachable from the commands that run it. The common ones have flags;
any other is set with ``--param KEY=VALUE`` (repeatable), or read from a JSON or YAML file with
``--params-file``. The rules:

* a dotted key sets a nested field: ``--param data.scale=[0.5,5]``, ``--param ranking.k=20``;
* a value is read as JSON when it parses as JSON (``20``, ``true``, ``null``, ``[0.5,5]``,
  ``{"A": 1}``, ``"text"``), and taken as a string otherwise (``--param data.sep=;``);
* the file comes first, then the flags, then each ``--param`` in order: the most specific wins;
  objects merge field by field.

A key the kind does not have is refused before anything runs, with the fields that exist.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from backend.cli.errors import usage
from backend.jobs.kind import installed

ParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        metavar="KEY=VALUE",
        help="set any param of the job (repeat): a dotted KEY sets a nested field, VALUE is "
        "JSON when it parses, else text",
        show_default=False,
    ),
]
ParamsFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--params-file",
        metavar="FILE",
        help="job params as a JSON or YAML object (flags and --param override it)",
        show_default=False,
    ),
]


class _Null:
    """A flag's way to set a param to JSON null (None means the flag was not given)."""

    def __repr__(self) -> str:
        return "NULL"


NULL = _Null()


def parse_value(text: str) -> Any:
    """``text`` as JSON when it parses as JSON, else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` laid over it; objects present in both merge field by field."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = dict(value) if isinstance(value, Mapping) else value
    return out


def assign(params: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``params`` with the dotted ``key`` set to ``value`` (missing objects are created)."""
    parts = key.split(".")
    if not all(parts):
        usage(f"bad param key {key!r}: use names joined by dots, e.g. data.scale")
    for part in reversed(parts[1:]):
        value = {part: value}
    head = parts[0]
    current = params.get(head)
    if len(parts) > 1 and current is not None and not isinstance(current, dict):
        usage(f"param {head!r} is {json.dumps(current)}, not an object: cannot set {key!r}")
    return merge(params, {head: value})


def assignments(
    items: Iterable[str], *, option: str = "--param", prefix: str = ""
) -> list[tuple[str, Any]]:
    """``KEY=VALUE`` items as (``prefix`` + key, value) pairs; the value as :func:`parse_value`."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            usage(f"{option} takes KEY=VALUE, got {item!r}")
        pairs.append((prefix + key.strip(), parse_value(value.strip())))
    return pairs


def read_params_file(path: Path) -> dict[str, Any]:
    """A params file: a JSON object, or a YAML mapping when its name ends in .yaml or .yml."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        usage(f"cannot read --params-file {path}: {exc.strerror or exc}")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            usage(f"--params-file {path} is not valid YAML: {' '.join(str(exc).split())}")
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            usage(f"--params-file {path} is not valid JSON: {exc}")
    if not isinstance(data, dict):
        usage(f'--params-file {path} must hold an object of params, e.g. {{"k": 5}}')
    return data


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The params model a field holds (also when it may be null), if it holds one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [m for m in map(_submodel, typing.get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


def check_fields(
    kind: str, model: type[BaseModel], params: Mapping[str, Any], at: str = ""
) -> None:
    """Refuse a key ``model`` does not have, naming the fields it has."""
    for key, value in params.items():
        field = model.model_fields.get(key)
        if field is None:
            where = f" of {at.rstrip('.')}" if at else ""
            valid = ", ".join(model.model_fields)
            usage(f"unknown {kind} param {at + key!r}; the fields{where} are: {valid}")
        sub = _submodel(field.annotation)
        if sub is not None and isinstance(value, Mapping):
            check_fields(kind, sub, value, f"{at}{key}.")


def job_params(
    kind: str,
    flags: Iterable[tuple[str, Any]] = (),
    *,
    param: list[str] | None = None,
    params_file: Path | None = None,
) -> dict[str, Any]:
    """The params of a ``kind`` job: the file, then the flags given, then each ``--param``.

    ``flags`` are (dotted key, value) pairs in order; a value of None means the flag was not
    given (the job's default applies), :data:`NULL` sets JSON null.
    """
    params = read_params_file(params_file) if params_file is not None else {}
    for key, value in flags:
        if value is not None:
            params = assign(params, key, None if value is NULL else value)
    for key, value in assignments(param or []):
        params = assign(params, key, value)
    job_kind = installed().get(kind)
    if job_kind is None:
        usage(f"unknown job kind {kind!r}")
    check_fields(kind, job_kind.params_model, params)
    return params


def pair(text: str, option: str) -> tuple[float, float]:
    """``LOW,HIGH`` (e.g. ``0.5,5``) as two numbers."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) == 2:
            return float(parts[0]), float(parts[1])
    except ValueError:
        pass
    usage(f"{option} takes two numbers as A,B (e.g. 0.5,5), got {text!r}")


def weights(text: str, option: str) -> dict[str, float]:
    """``NAME=NUMBER,...`` (e.g. ``A=1,B=3``) as a mapping."""
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            if sep and name.strip():
                out[name.strip()] = float(value)
                continue
        except ValueError:
            pass
        usage(f"{option} takes NAME=NUMBER pairs joined by commas (e.g. A=1,B=3), got {text!r}")
    return out
