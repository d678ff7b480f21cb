"""A registry of kinds by name, as timm registers models: each kind is declared once, with what it
needs and makes, and everything else asks the registry (`STRATEGIES["img2img"].makes`) instead
of comparing kind strings or keeping sets of kind names of its own."""

from __future__ import annotations

import difflib
from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownKind(ValueError):
    pass


class Registry(Generic[T]):
    """name -> one kind's declaration (any object with a `name`), in registration order."""

    def __init__(self, what: str):
        self.what = what  # 'strategy', 'report', 'test set': for the error
        self._kinds: dict[str, T] = {}

    def register(self, kind: T) -> T:
        if kind.name in self._kinds:
            raise ValueError(f"{self.what} kind '{kind.name}' is registered twice")
        self._kinds[kind.name] = kind
        return kind

    def __getitem__(self, name: str) -> T:
        try:
            return self._kinds[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), list(self._kinds), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise UnknownKind(f"unknown {self.what} kind '{name}' (one of {', '.join(self._kinds)}){hint}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def names(self, **traits) -> tuple[str, ...]:
        """The kinds whose attributes equal `traits` (names(derived=True)), in registration order."""
        return tuple(n for n, k in self._kinds.items() if all(getattr(k, a) == v for a, v in traits.items()))
