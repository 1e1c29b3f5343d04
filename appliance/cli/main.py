"""The `cairn` command: `cairn server ...` runs a node, `cairn admin ...` talks to a running one.

Contract: this is the only module that reads process arguments and the environment for settings.
`server` checks and prepares the drives once in the parent process, prints where to connect, then
hands one `ServerConfig` to uvicorn's worker processes through the environment.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from appliance.cli.admin import admin_app
from appliance.config import ENV_VAR, ServerConfig, split_address
from appliance.engine.errors import EngineError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Cairn: an S3-compatible, erasure-coded object store.")
app.add_typer(admin_app, name="admin")

DEFAULT_USER = "cairnadmin"
DEFAULT_PASSWORD = "cairnadmin"


def root_credentials() -> tuple[str, str, bool]:
    """Root user and password from the environment (MinIO's names work too); True if defaults are used."""
    user = os.environ.get("CAIRN_ROOT_USER") or os.environ.get("MINIO_ROOT_USER")
    password = os.environ.get("CAIRN_ROOT_PASSWORD") or os.environ.get("MINIO_ROOT_PASSWORD")
    if not user and not password:
        return DEFAULT_USER, DEFAULT_PASSWORD, True
    if not user or not password:
        raise typer.BadParameter("set both CAIRN_ROOT_USER and CAIRN_ROOT_PASSWORD (or neither, for the defaults)")
    if len(user) < 3 or len(password) < 8:
        raise typer.BadParameter("the root user needs at least 3 characters and the password at least 8")
    return user, password, False


@app.command()
def server(
    drives: Annotated[list[str], typer.Argument(
        help="Drive folders, or for a cluster the same drive URLs on every node; MinIO's ellipsis works: "
             "/mnt/drive{1...4} or http://node{1...4}.lab:9000/mnt/drive{1...4}. Each argument with an "
             "ellipsis is one pool")],
    address: Annotated[str, typer.Option(help="S3 API address, HOST:PORT or :PORT")] = ":9000",
    console_address: Annotated[str, typer.Option(help="Web console address")] = ":9001",
    workers: Annotated[int, typer.Option(help="Worker processes (0: one per core)")] = 0,
    parity: Annotated[int | None, typer.Option(help="Parity drives per erasure set (default by set size)")] = None,
    set_size: Annotated[int | None, typer.Option(
        help="Drives per erasure set, 2 to 16 (default: the largest that divides the drives evenly over hosts)")] = None,
    region: Annotated[str, typer.Option(help="Region name reported to clients")] = "us-east-1",
    domain: Annotated[list[str] | None, typer.Option(help="Domain for virtual-host-style requests")] = None,
    lock_dir: Annotated[str, typer.Option(help="Folder for cross-process lock files")] = "",
    heal_throttle: Annotated[float, typer.Option(
        help="Seconds the background scanner sleeps between objects (0: unthrottled)")] = 0.01,
    scan_interval: Annotated[float, typer.Option(help="Seconds between background scanner passes")] = 300.0,
    multipart_expiry: Annotated[float, typer.Option(
        help="Seconds after which an unfinished multipart upload is removed")] = 24 * 3600.0,
) -> None:
    """Run a Cairn node on DRIVES."""
    import uvicorn

    from appliance.cluster.node import parity_for, prepare_drives, topology_of
    from appliance.cluster.placement import PlacementError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    user, password, defaults = root_credentials()
    try:
        config = ServerConfig(
            drives=drives, address=address, console_address=console_address,
            workers=workers or (os.cpu_count() or 1), parity=parity, set_size=set_size, region=region,
            domains=domain or [],
            lock_dir=lock_dir, root_user=user, root_password=password,
            heal_throttle=heal_throttle, scan_interval=scan_interval, multipart_expiry=multipart_expiry,
            debug_disable_heal=os.environ.get("CAIRN_DEBUG_DISABLE_HEAL") == "1",
        )
        topology = topology_of(config)
        layouts = [(len(pool), len(pool[0]), parity_for(config, len(pool[0]))) for pool in topology.pools]
        boots = prepare_drives(config)
    except (PlacementError, ValueError, EngineError) as exc:
        typer.echo(f"cairn: {exc}", err=True)
        raise typer.Exit(2) from None
    host, port = split_address(address)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if boots:
        typer.echo(f"Cairn deployment {boots[0].deployment_id}")
    else:
        hosts = len(topology.peers) + 1
        typer.echo(f"Cairn cluster node {shown}:{port} of {hosts} nodes: it joins the cluster once a majority of "
                   f"its peers answer (S3 requests get 503 until then)")
    for p, (sets, size, effective_parity) in enumerate(layouts):
        if size == 1:
            layout = "1 drive: NO erasure coding, a failed drive loses data"
        else:
            layout = (f"{sets} erasure set(s) of {size} drives, EC {size - effective_parity}+{effective_parity} "
                      f"(survives {effective_parity} failed drives per set)")
        typer.echo(f"  {'Pool ' + str(p + 1) + ': ' if len(layouts) > 1 else 'Drives:  '}{sets * size}, {layout}")
    for line in (line for boot in boots for line in boot.problems):
        typer.echo(f"  WARNING: {line}")
    typer.echo(f"  S3 API:  http://{shown}:{port}  (region {region})")
    chost, cport = split_address(console_address)
    typer.echo(f"  Console: http://{'127.0.0.1' if chost in ('0.0.0.0', '::') else chost}:{cport}")
    typer.echo(f"  RootUser: {user}")
    if defaults:
        typer.echo(f"  RootPass: {password}   (default: set CAIRN_ROOT_USER / CAIRN_ROOT_PASSWORD)")
    else:
        typer.echo("  RootPass: (from the environment)")
    sys.stdout.flush()
    os.environ[ENV_VAR] = config.to_env()
    from appliance.console.app import create_console_app, serve_console_in_thread

    try:
        serve_console_in_thread(create_console_app(f"http://{shown}:{port}", region), chost, cport)
    except (OSError, RuntimeError) as exc:
        # The S3 API matters more than the console: serve without it rather than not at all.
        typer.echo(f"  WARNING: console not started: {exc}", err=True)
    uvicorn.run(
        "appliance.http.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=config.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        timeout_keep_alive=30,
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
