"""Plain-data conversion for the dataclasses that travel as JSON/YAML (inventory, plan).

One generic pair instead of hand-written ``to_dict``/``from_dict`` per class, so adding a field
never needs two more edits.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

T = TypeVar("T")


def to_data(obj: Any) -> Any:
    """Dataclasses → dicts (field order kept), tuples → lists, recursively."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_data(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_data(v) for k, v in obj.items()}
    return obj


def from_data(cls: type[T], data: Any) -> T:
    """Build ``cls`` from plain data; unknown keys are ignored, missing ones take defaults.

    Type errors are not checked here: validation with key paths is the plan loader's job.
    """
    return typing.cast(T, _convert(cls, data))


def _convert(tp: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return _convert(args[0], data) if len(args) == 1 else data
    if dataclasses.is_dataclass(tp) and isinstance(data, dict):
        hints = get_type_hints(tp)
        kwargs = {
            f.name: _convert(hints[f.name], data[f.name])
            for f in dataclasses.fields(tp)
            if f.init and f.name in data
        }
        return tp(**kwargs)
    if origin in (list, tuple) and isinstance(data, list):
        (item,) = get_args(tp)[:1] or (Any,)
        return [_convert(item, v) for v in data]
    if origin is dict and isinstance(data, dict):
        args = get_args(tp)
        value_tp = args[1] if len(args) == 2 else Any
        return {k: _convert(value_tp, v) for k, v in data.items()}
    return data
