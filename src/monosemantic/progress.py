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


class Bar:
    """A bar on stderr for work the caller counts itself: steps or points done, time left, and a short note."""

    def __init__(self, total: int, description: str, done: int = 0):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.p = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                          TextColumn("{task.fields[note]}"), TimeRemainingColumn(), console=Console(stderr=True),
                          transient=True)
        self.p.start()
        self.task = self.p.add_task(description, total=total, completed=done, note="")

    def update(self, done: int, note: str = "") -> None:
        self.p.update(self.task, completed=done, note=note)

    def advance(self) -> None:
        self.p.advance(self.task)

    def close(self) -> None:
        self.p.stop()
