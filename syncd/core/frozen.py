"""Frozen dataclass values made in bulk: a listing, a journal or a scan makes one per file.

A frozen dataclass's own `__init__` sets each field through `object.__setattr__`, which costs
about a microsecond per value of seven fields; `maker(cls)` returns a function taking the
fields in order (all of them: no defaults) that sets the slots directly, two to three times
faster. The value is the same in every way (equality, hash, repr, pickling): only for classes
without `__post_init__`, whose `__init__` does nothing but set the fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def maker(cls: type[T]) -> Callable[..., T]:
    """A function `make(*fields)` that returns `cls(*fields)`, every field given, in order."""
    if not dataclasses.is_dataclass(cls) or not hasattr(cls, "__slots__") or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} is not a slotted dataclass without __post_init__")
    names = [f.name for f in dataclasses.fields(cls)]
    scope: dict[str, Any] = {"new": object.__new__, "cls": cls}
    scope.update({f"set_{i}": getattr(cls, name).__set__ for i, name in enumerate(names)})
    args = ", ".join(f"v{i}" for i in range(len(names)))
    body = "".join(f"    set_{i}(obj, v{i})\n" for i in range(len(names)))
    exec(f"def make({args}):\n    obj = new(cls)\n{body}    return obj\n", scope)  # noqa: S102
    make: Callable[..., T] = scope["make"]
    make.__doc__ = f"`{cls.__name__}` of all its fields, in order, made without its `__init__`."
    return make
