"""Progress bars on stderr (rich), shown only when asked for: callers pass `enabled` (the CLI: a terminal)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def track(items: Iterable[T], description: str, enabled: bool = True, total: int | None = None) -> Iterator[T]:
    """`items`, with a transient bar on stderr while they are consumed when enabled."""
    if not enabled:
        yield from items
        return
    from rich.console import Console
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, total=total, console=Console(stderr=True), transient=True)
