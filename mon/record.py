"""A stand-in for `typing.NamedTuple` at run time: typing (and dataclasses, which imports
inspect) are a good part of the monitor's start-up CPU and half a MiB of its resident set.

Modules write `class X(Record)` with annotated fields and defaults; mypy sees
`typing.NamedTuple` (`if TYPE_CHECKING`), the interpreter this: positional or keyword
construction, defaults, immutability, equality by fields.
"""

from __future__ import annotations


class Record:
    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __init_subclass__(cls) -> None:
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            for name in klass.__dict__.get("__annotations__", {}):
                if not name.startswith("_") and name not in names:
                    names.append(name)
        cls._fields = tuple(names)

    def __init__(self, *args: object, **kwargs: object) -> None:
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}: too many arguments")
        values = dict(zip(fields, args, strict=False))
        for name, value in kwargs.items():
            if name not in fields or name in values:
                raise TypeError(f"{type(self).__name__}: bad argument {name!r}")
            values[name] = value
        for name in fields:
            if name not in values:
                if name not in type(self).__dict__ and not any(
                    name in k.__dict__ for k in type(self).__mro__[1:]
                ):
                    raise TypeError(f"{type(self).__name__}: missing argument {name!r}")
                continue
            object.__setattr__(self, name, values[name])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._fields)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in self._fields))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{type(self).__name__}({inner})"
