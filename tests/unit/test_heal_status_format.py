"""`cairn admin heal status` turns the admin API's status document into lines a person reads."""

from __future__ import annotations

import pytest

from appliance.cli.admin import format_heal_status

IDLE = {"queued": 0, "objects_scanned": 0, "objects_healed": 0, "objects_failed": 0, "bytes_written": 0}
BUSY = {
    "queued": 3, "objects_scanned": 120, "objects_healed": 100, "objects_failed": 2, "bytes_written": 3 * 2**30,
    "bytes_per_second": 50 * 2**20, "updated": 1000.0,
    "scanner": {"passes": 4, "pass_objects": 500, "pass_bytes": 2**30, "objects_queued": 7, "objects_per_second": 25.0,
                "bytes_per_second": 2**25, "last_pass_seconds": 3725.0, "throttle": 0.01},
    "healing_drives": [{"endpoint": "/mnt/d3", "set": 0, "used": 2**30, "remaining_bytes": 2 * 2**30,
                        "eta_seconds": 41.0}],
}


@pytest.mark.parametrize(("doc", "expected"), [
    (IDLE, ["queued objects:   0", "0 healed, 0 failed of 0 checked; 0 B written", "drives healing:   none"]),
    (BUSY, ["queued objects:   3", "100 healed, 2 failed of 120 checked; 3.0 GiB written, 50.0 MiB/s now",
            "pass 5: 500 objects, 1.0 GiB verified (25 obj/s, 32.0 MiB/s)", "last full pass took 1h02m",
            "drives healing:   1", "set 1 /mnt/d3: 1.0 GiB written, 2.0 GiB to go, ETA 0m41s", "(as of 5 s ago)"]),
    ({**BUSY, "healing_drives": [{**BUSY["healing_drives"][0], "eta_seconds": None}]},  # type: ignore[index]
     ["ETA unknown"]),
])
def test_heal_status_is_readable(doc: dict, expected: list[str]) -> None:
    text = format_heal_status(doc, now=1005.0)
    for fragment in expected:
        assert fragment in text
    assert "{" not in text  # no raw dictionaries
