"""Backoff: the waits of a loop that tries again after failures, doubling up to a ceiling.

The dispatcher's relay (queue outage), the executor's receive loop, the LISTEN connection and the
executor's writes of an outcome through a database outage each keep one ``Backoff``: ``next()``
after each failure is the wait before the next try, ``reset()`` after a success starts over.
"""

from __future__ import annotations


class Backoff:
    def __init__(self, first: float, longest: float) -> None:
        self.first = first
        self.longest = longest
        self.failures = 0  # since the last reset
        self._next = first

    def next(self) -> float:
        """The wait after one more failure: ``first``, twice that, ... up to ``longest``."""
        delay = self._next
        self._next = min(self._next * 2, self.longest)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
        self._next = self.first
