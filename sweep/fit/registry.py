"""Every scaling-law method, by name: adding one is a module that builds a `Method` and one line here."""

from __future__ import annotations

from sweep.fit import anchored, approach1, approach2, approach3, drift, kaplan, shared_exponent, upper, valley
from sweep.fit.config import FitInputError
from sweep.fit.method import Method

METHODS: dict[str, Method] = {m.name: m for m in (
    approach1.METHOD,
    approach2.METHOD,
    approach3.METHOD,
    kaplan.METHOD,
    shared_exponent.METHOD,
    valley.METHOD,
    upper.METHOD,
    anchored.METHOD,
    drift.METHOD,
)}


def defaults() -> list[str]:
    """The methods a fit runs when `fit.methods` is null."""
    return [name for name, m in METHODS.items() if m.default]


def get(name: str) -> Method:
    """The method called name, or a FitInputError listing the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise FitInputError(f"method {name!r} unknown: choose from {list(METHODS)}") from None
