"""Cairn's failure simulator: real `cairn server` processes, real drive faults, scenarios as data.

Contract: `cairn-sim` (`python -m simulator`) runs YAML scenarios (`scenario.py`) against a cluster it
builds itself (`cluster.py`: loop-mounted XFS drives, optional FUSE passthroughs, the server
process; or, for `nodes` > 1, `nodes.py`: several nodes in network namespaces from `netns.py`), injects faults (`faults.py`), checks invariants after every step (`invariants.py`) and
writes a Markdown + HTML report with plots (`report.py`). It needs root, loop devices, XFS tools
and, for slow/flaky drives, FUSE: `support.py` says what is missing rather than skipping quietly.
"""
