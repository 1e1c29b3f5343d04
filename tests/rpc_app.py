"""A node that serves only internode RPC, for tests: `uvicorn --factory tests.rpc_app:create_app`.

It serves the drive folders listed in `CAIRN_TEST_RPC_DRIVES` (separated by os.pathsep, addressed
by those exact paths) as LocalDrives, with the key derived from `CAIRN_ROOT_USER` /
`CAIRN_ROOT_PASSWORD`. Its lock service only echoes `lock/echo`: it proves the routing to a
LockService, not locking (dsync has its own tests).
"""

from __future__ import annotations

import os
from typing import Any

from appliance.cluster.rpc import UnknownMethod, derive_key
from appliance.cluster.rpc_server import InternodeServer
from appliance.engine.drive import Drive, LocalDrive


class EchoLockService:
    async def handle(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method != "echo":
            raise UnknownMethod(method)
        return {"method": method, "args": args}


def create_app() -> InternodeServer:
    paths = [p for p in os.environ["CAIRN_TEST_RPC_DRIVES"].split(os.pathsep) if p]
    drives: dict[str, Drive] = {path: LocalDrive(path) for path in paths}
    key = derive_key(os.environ["CAIRN_ROOT_USER"], os.environ["CAIRN_ROOT_PASSWORD"])
    return InternodeServer(key, drives, EchoLockService(), lambda: {"version": "test", "drives": paths})
