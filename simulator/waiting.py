"""Waiting for conditions: the simulator never sleeps a fixed time to let something happen.

Contract: `wait_for(predicate, timeout, what)` polls until the predicate returns something truthy
and returns it, or raises TimeoutError naming `what`. `poll_until` is the same, but returns None on
timeout instead of raising (for expectations that report rather than abort).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(predicate: Callable[[], T], timeout: float, interval: float = 0.2) -> T | None:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    result = poll_until(predicate, timeout, interval)
    if result is None or not result:
        raise TimeoutError(f"{what}: not within {timeout:g} s")
    return result
