"""Which names a worker exposes (mirrors src/actors/callable-names.ts)."""

from __future__ import annotations

import functools
import types
from typing import Any, Callable

_FUNCTION_TYPES = (types.FunctionType, types.BuiltinFunctionType, staticmethod, classmethod, functools.partialmethod)
_INSTANCE_FUNCTION_TYPES = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, functools.partial)


def callable_table(instance: object, base: type) -> dict[str, Callable[..., Any]]:
    """Name -> bound callable for every method the user's classes define.

    Never `_`-prefixed names, nor anything `base` (or `object`) defines — even when a subclass
    overrides it — nor properties, nested classes or other non-function attributes. Classes
    are looked at in MRO order, so the most derived definition of a name decides; mixins that
    do not derive from `base` count as the user's. Function-valued instance attributes (a
    function, bound method or functools.partial assigned in `__init__`) count too.
    """
    reserved = set(dir(base))
    skip = set(base.__mro__)
    table: dict[str, Callable[..., Any]] = {}
    seen: set[str] = set()
    for name, value in vars(instance).items() if hasattr(instance, "__dict__") else ():
        seen.add(name)
        if name.startswith("_") or name in reserved:
            continue
        if isinstance(value, _INSTANCE_FUNCTION_TYPES):
            table[name] = value
    for cls in type(instance).__mro__:
        if cls in skip:
            continue
        for name, value in vars(cls).items():
            if name in seen:
                continue
            seen.add(name)
            if name.startswith("_") or name in reserved:
                continue
            if isinstance(value, _FUNCTION_TYPES):
                table[name] = getattr(instance, name)
    return dict(sorted(table.items()))
