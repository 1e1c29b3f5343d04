"""The `cairn` command: `cairn server ...` runs a node, `cairn admin ...` talks to a running one.

Contract: this is the only module that reads process arguments and the environment for settings.
`server` checks and prepares the drives once in the parent process, prints where to connect, then
hands one `ServerConfig` to uvicorn's worker processes through the environment. A certificates
folder (MinIO's layout: public.crt, private.key, CAs/*.crt) turns on HTTPS for the S3 API, the
console and internode RPC; it is checked here, so a bad key stops the start with exit code 2.
"""

from __future__ import annotations

import logging
import os
import ssl
import sys
from pathlib import Path
from typing import Annotated

import typer

from appliance.cli.admin import admin_app
from appliance.config import (
    CAS_DIR,
    CERT_FILE,
    ENV_VAR,
    KEY_FILE,
    ServerConfig,
    split_address,
    trusted_cert_files,
)
from appliance.engine.errors import EngineError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Cairn: an S3-compatible, erasure-coded object store.")
app.add_typer(admin_app, name="admin")

DEFAULT_USER = "cairnadmin"
DEFAULT_PASSWORD = "cairnadmin"
DEFAULT_CERTS_DIR = "~/.cairn/certs"


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


def resolve_certs_dir(option: str | None) -> str:
    """The checked certificates folder to serve TLS with, or "" for plain HTTP.

    `option` None means the default folder, used only if it holds a certificate or a key; "" turns
    TLS off. Raises ValueError, saying which file is wrong, for anything uvicorn could not load."""
    if option == "":
        return ""
    root = Path(option or DEFAULT_CERTS_DIR).expanduser()
    cert, key = root / CERT_FILE, root / KEY_FILE
    if option is None and not (cert.exists() or key.exists()):
        return ""
    if not root.is_dir():
        raise ValueError(f"--certs-dir {root}: no such folder")
    for path in (cert, key):
        if not path.is_file():
            raise ValueError(f"TLS: {path} is missing ({root} needs both {CERT_FILE} and {KEY_FILE})")
    for path in [key, *map(Path, trusted_cert_files(str(root)))]:
        try:
            path.read_bytes()
        except OSError as exc:
            raise ValueError(f"TLS: cannot read {path}: {exc.strerror}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    for path in map(Path, trusted_cert_files(str(root))):
        try:
            context.load_verify_locations(cafile=path)
        except ssl.SSLError:
            raise ValueError(f"TLS: {path} is not a PEM certificate") from None
    try:
        # The password callback keeps OpenSSL from prompting on the terminal for an encrypted key.
        context.load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise ValueError(f"TLS: {key} is not the private key of {cert}") from None
        raise ValueError(f"TLS: {key} is not a usable PEM private key (encrypted keys are not supported)") from None
    return str(root.resolve())


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
    heal_workers: Annotated[int, typer.Option(
        min=1, max=64, help="Objects healed at once when a blank drive is filled or `cairn admin heal` runs "
                            "(more: faster healing, fewer I/O threads left for clients)")] = 8,
    multipart_expiry: Annotated[float, typer.Option(
        help="Seconds after which an unfinished multipart upload is removed")] = 24 * 3600.0,
    certs_dir: Annotated[str | None, typer.Option(
        help=f"TLS folder: {CERT_FILE} + {KEY_FILE} serve HTTPS, {CAS_DIR}/*.crt are extra CAs trusted for "
             f"peers (default: {DEFAULT_CERTS_DIR} if it holds them; '' for plain HTTP)",
        show_default=False)] = None,
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
            heal_throttle=heal_throttle, scan_interval=scan_interval, heal_workers=heal_workers,
            multipart_expiry=multipart_expiry,
            certs_dir=resolve_certs_dir(certs_dir),
            debug_disable_heal=os.environ.get("CAIRN_DEBUG_DISABLE_HEAL") == "1",
        )
        topology = topology_of(config)
        if topology.distributed and (topology.scheme == "https") != bool(config.certs_dir):
            raise ValueError(f"the drive URLs are {topology.scheme}:// but TLS is "
                             f"{'on' if config.certs_dir else 'off'}: use https:// URLs exactly when "
                             f"--certs-dir holds {CERT_FILE} and {KEY_FILE}")
        layouts = [(len(pool), len(pool[0]), parity_for(config, len(pool[0]))) for pool in topology.pools]
        boots = prepare_drives(config)
    except (PlacementError, ValueError, EngineError) as exc:
        typer.echo(f"cairn: {exc}", err=True)
        raise typer.Exit(2) from None
    host, port = split_address(address)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    scheme = "https" if config.certs_dir else "http"
    cert_file = os.path.join(config.certs_dir, CERT_FILE) if config.certs_dir else None
    key_file = os.path.join(config.certs_dir, KEY_FILE) if config.certs_dir else None
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
    typer.echo(f"  S3 API:  {scheme}://{shown}:{port}  (region {region})")
    chost, cport = split_address(console_address)
    typer.echo(f"  Console: {scheme}://{'127.0.0.1' if chost in ('0.0.0.0', '::') else chost}:{cport}")
    typer.echo(f"  RootUser: {user}")
    if defaults:
        typer.echo(f"  RootPass: {password}   (default: set CAIRN_ROOT_USER / CAIRN_ROOT_PASSWORD)")
    else:
        typer.echo("  RootPass: (from the environment)")
    sys.stdout.flush()
    os.environ[ENV_VAR] = config.to_env()
    from appliance.console.app import create_console_app, serve_console_in_thread

    try:
        trust = trusted_cert_files(config.certs_dir) if config.certs_dir else []
        serve_console_in_thread(create_console_app(f"{scheme}://{shown}:{port}", region, trust), chost, cport,
                                ssl_certfile=cert_file, ssl_keyfile=key_file)
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
        ssl_certfile=cert_file,
        ssl_keyfile=key_file,
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
