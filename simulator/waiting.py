"""Waiting for conditions: neither the simulator nor the tests sleep a fixed time to let something happen.

Contract: `wait_until(predicate, timeout, interval, message)` polls until the predicate returns
something truthy and returns it, or raises TimeoutError naming `message`. `poll_until` is the same,
but returns None on timeout instead of raising (for expectations that report rather than abort).
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


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.05, message: str = "") -> T:
    """Call `predicate` until it returns something truthy, and return that; fail after `timeout` s."""
    result = poll_until(predicate, timeout, interval)
    if result is None or not result:
        raise TimeoutError(f"condition not met within {timeout:g} s: {message or predicate!r}")
    return result
