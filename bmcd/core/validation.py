"""Request bodies checked against the DMTF schemas' property facts.

The generated specs say which properties exist, which are read-only, their
types, enums and ranges; a handler only says which properties it actually
lets clients write. Every problem in a body is reported at once, and a body
with any problem is refused whole, so a partly bad PATCH changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from http import HTTPStatus
from typing import Any

from bmcd.core.errors import Message, RedfishError
from bmcd.generated.registries import Base
from bmcd.generated.schemas import ACTION_PARAMETERS, SPECS, Prop

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def json_type_ok(value: Any, types: Collection[str]) -> bool:
    """Whether ``value`` has one of the JSON ``types``."""
    if value is None:
        return "null" in types
    if isinstance(value, bool):
        return "boolean" in types
    return any(isinstance(value, _JSON_TYPES[t]) for t in types if t in _JSON_TYPES)


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def check_properties(
    type_name: str,
    body: Mapping[str, Any],
    writable: Collection[str],
    *,
    required: Collection[str] = (),
    nullable: Collection[str] = (),
) -> None:
    """Refuse ``body`` unless it writes only ``writable`` paths, correctly.

    ``writable`` holds property names and ``Parent/Child`` paths; a name
    covers everything below it. ``required`` properties must be present
    (POST). Null is accepted only for the ``nullable`` paths, where it means
    something to the handler. Raises RedfishError 400 carrying every problem.
    """
    problems: list[Message] = []
    if not body:
        raise RedfishError.of(HTTPStatus.BAD_REQUEST, Base.EmptyJSON)
    for name in required:
        if name not in body:
            problems.append(Message(Base.PropertyMissing, (name,), (f"#/{name}",)))
    _check_object(SPECS[type_name], body, set(writable), set(nullable), "", problems)
    if problems:
        raise RedfishError(HTTPStatus.BAD_REQUEST, _bounded(problems))


def _check_object(
    specs: Mapping[str, Prop],
    body: Mapping[str, Any],
    writable: set[str],
    nullable: set[str],
    prefix: str,
    problems: list[Message],
) -> None:
    for name, value in body.items():
        path = f"{prefix}{name}"
        if name.startswith("@") or "@" in name:
            # Annotations (@odata.etag and the like) carry no settable data.
            continue
        spec = specs.get(name)
        if spec is None:
            problems.append(Message(Base.PropertyUnknown, (path,), (f"#/{path}",)))
            continue
        covered = path in writable or any(path.startswith(w + "/") for w in writable)
        nested = any(w.startswith(path + "/") for w in writable)
        if not covered and not nested:
            problems.append(Message(Base.PropertyNotWritable, (path,), (f"#/{path}",)))
            continue
        if not json_type_ok(value, spec.types) or (
            value is None and path not in nullable
        ):
            problems.append(
                Message(
                    Base.PropertyValueTypeError, (_show(value), path), (f"#/{path}",)
                )
            )
            continue
        if isinstance(value, dict) and spec.props is not None:
            child_writable = (
                writable
                if not covered
                else writable | {f"{path}/{k}" for k in spec.props}
            )
            _check_object(
                spec.props, value, child_writable, nullable, f"{path}/", problems
            )
            continue
        if isinstance(value, list) and spec.items is not None:
            for index, item in enumerate(value):
                problem = _check_value(spec.items, item, f"{path}/{index}")
                if problem:
                    problems.append(problem)
            continue
        problem = _check_value(spec, value, path)
        if problem:
            problems.append(problem)


def _check_value(spec: Prop, value: Any, path: str) -> Message | None:
    related = (f"#/{path}",)
    if not json_type_ok(value, spec.types):
        return Message(Base.PropertyValueTypeError, (_show(value), path), related)
    if value is None:
        return None
    if spec.enum is not None and isinstance(value, str) and value not in spec.enum:
        return Message(Base.PropertyValueNotInList, (value, path), related)
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (
            (spec.minimum is not None and value < spec.minimum)
            or (spec.maximum is not None and value > spec.maximum)
        )
    ):
        return Message(Base.PropertyValueOutOfRange, (_show(value), path), related)
    if (
        spec.pattern
        and isinstance(value, str)
        and re.fullmatch(spec.pattern, value) is None
    ):
        return Message(Base.PropertyValueFormatError, (value, path), related)
    return None


def check_action(
    type_name: str,
    action: str,
    body: Mapping[str, Any],
    *,
    supported: Collection[str] | None = None,
    allowed_values: Mapping[str, Collection[Any]] | None = None,
) -> None:
    """Refuse action parameters that are unknown, missing, mistyped or unsupported.

    ``action`` is the schema's name, e.g. ``#Manager.Reset``; ``supported``
    limits the parameters bmcd implements (None: all); ``allowed_values``
    narrows enums to what bmcd implements.
    """
    params = ACTION_PARAMETERS[type_name][action]
    short = action.rsplit(".", 1)[-1]
    supported = set(params if supported is None else supported)
    problems: list[Message] = []
    for name, spec in params.items():
        if spec.required_on_create and name not in body and name in supported:
            problems.append(
                Message(Base.ActionParameterMissing, (short, name), (f"#/{name}",))
            )
    for name, value in body.items():
        related = (f"#/{name}",)
        if name.startswith("@"):
            continue
        param = params.get(name)
        if param is None:
            problems.append(
                Message(Base.ActionParameterUnknown, (short, name), related)
            )
        elif name not in supported:
            problems.append(
                Message(Base.ActionParameterNotSupported, (name, short), related)
            )
        elif not json_type_ok(value, param.types):
            problems.append(
                Message(
                    Base.ActionParameterValueTypeError,
                    (_show(value), name, short),
                    related,
                )
            )
        else:
            choices = (allowed_values or {}).get(name, param.enum)
            if (
                choices is not None
                and isinstance(value, str | int)
                and (value not in choices)
            ):
                problems.append(
                    Message(
                        Base.ActionParameterValueNotInList,
                        (_show(value), name, short),
                        related,
                    )
                )
    if problems:
        raise RedfishError(HTTPStatus.BAD_REQUEST, _bounded(problems))


# A body with thousands of bad keys gets a short answer, not one message each.
MAX_MESSAGES = 16


def _bounded(problems: list[Message]) -> list[Message]:
    if len(problems) <= MAX_MESSAGES:
        return problems
    return [*problems[: MAX_MESSAGES - 1], Message(Base.MaximumErrorsExceeded)]
