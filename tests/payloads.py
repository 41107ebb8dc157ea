"""Does a payload (a plain dict at run time) have exactly the shape its ``TypedDict`` declares?

:func:`shape_errors` walks a value against a type hint: a ``TypedDict`` must hold every required
key and no key it does not declare, and each value is checked against its key's type, through
lists, dict values, unions and ``Literal`` s. ``Any`` (the open parts: details, numbers, params)
matches anything. An empty list means the payload matches.
"""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict


def shape_errors(value: Any, hint: Any, where: str = "payload") -> list[str]:
    """Every place where ``value`` departs from ``hint`` (a path and what is wrong there)."""
    if hint is Any:
        return []
    if is_typeddict(hint):
        return _typeddict_errors(value, hint, where)
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        options = [shape_errors(value, option, where) for option in args]
        return [] if [] in options else min(options, key=len)
    if origin is Literal:
        return [] if value in args else [f"{where}: {value!r} is not one of {list(args)}"]
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return [f"{where}: {type(value).__name__}, expected a list"]
        item = args[0] if args else Any
        return [e for i, v in enumerate(value) for e in shape_errors(v, item, f"{where}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, expected a dict"]
        key_type, value_type = args or (Any, Any)
        return [e for k, v in value.items()
                for e in shape_errors(k, key_type, f"{where} key") + shape_errors(v, value_type, f"{where}[{k!r}]")]
    return _leaf_errors(value, hint, where)


def _typeddict_errors(value: Any, hint: Any, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: {type(value).__name__}, expected a dict ({hint.__name__})"]
    required, optional = hint.__required_keys__, hint.__optional_keys__
    errors = []
    if missing := sorted(required - set(value)):
        errors.append(f"{where}: {hint.__name__} lacks {missing}")
    if unexpected := sorted(set(value) - required - optional):
        errors.append(f"{where}: {hint.__name__} does not declare {unexpected}")
    hints = get_type_hints(hint)
    for key in sorted(set(value) & set(hints)):
        errors += shape_errors(value[key], hints[key], f"{where}.{key}")
    return errors


def _leaf_errors(value: Any, hint: Any, where: str) -> list[str]:
    if hint is None or hint is type(None):
        ok = value is None
    elif hint is float:  # JSON has one number type: an int is a fine float
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(hint, type):
        ok = isinstance(value, hint)
    else:
        raise TypeError(f"{where}: shape_errors cannot check the hint {hint!r}")
    return [] if ok else [f"{where}: {value!r} ({type(value).__name__}) is not a {getattr(hint, '__name__', hint)}"]
