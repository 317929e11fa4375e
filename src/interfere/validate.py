"""One-line checks of configuration values, so nonsense fails up front with the key's name."""

from __future__ import annotations

from collections.abc import Iterable

from interfere.errors import UserError


def at_least(name: str, value: float | int, low: float | int) -> None:
    if value < low:
        raise UserError(f"{name} must be >= {low}, got {value!r}")


def within(name: str, value: float, low: float, high: float, high_open: bool = False) -> None:
    """``low <= value <= high`` (``< high`` when ``high_open``)."""
    if not (low <= value < high if high_open else low <= value <= high):
        raise UserError(f"{name} must be in [{low}, {high}{')' if high_open else ']'}, got {value!r}")


def ordered(low_name: str, low: float, high_name: str, high: float) -> None:
    if low > high:
        raise UserError(f"{low_name} ({low}) must not exceed {high_name} ({high})")


def one_of(name: str, value: object, options: Iterable[object]) -> None:
    options = tuple(options)
    if value not in options:
        raise UserError(f"{name} must be one of {', '.join(map(str, options))}; got {value!r}")
