"""Multi-node tests on a network-namespace lab (simulator/netns.py); they need root, `ip` and `iptables`.

Contract: registers the `distributed` marker that tests of the distributed mode (issue 5) carry, so
`pytest -m "not distributed"` leaves them out while that mode is being wired.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "distributed: needs Cairn's distributed mode (several nodes, one deployment)")
