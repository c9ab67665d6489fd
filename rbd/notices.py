"""Notices about input that was skipped or changed (unreadable files, unsafe zip members, ...).

Library and command-line users get them as ordinary `UserWarning`s. A server collects them per
request instead (`with collect() as notes: ...`), because Python's warning machinery is
process-wide and would hand one user's notices to another; a context variable is per thread.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Sequence

_collector: ContextVar[list[str] | None] = ContextVar("rbd_notices", default=None)


def some(names: Sequence[str], shown: int = 5) -> str:
    """The first `shown` of `names`, comma-separated, "and more" where there are others: a notice names a few."""
    return ", ".join(names[:shown]) + (" and more" if len(names) > shown else "")


def notify(message: str) -> None:
    """Report `message` to the active collector, or as a UserWarning if none is active."""
    notes = _collector.get()
    if notes is None:
        warnings.warn(message, UserWarning, stacklevel=3)
    else:
        notes.append(message)


@contextmanager
def collect() -> Iterator[list[str]]:
    """Collect the notices raised in this thread (or task) while the block runs. A block that raises never reads its
    notes, so they go on to the enclosing collector (or warnings): an evaluation that failed as "only 10 of 20 could
    be read" had dropped the notice naming the 10 and why."""
    notes: list[str] = []
    token = _collector.set(notes)
    try:
        yield notes
    except BaseException:
        _collector.reset(token)
        for message in notes:
            notify(message)
        raise
    else:
        _collector.reset(token)
