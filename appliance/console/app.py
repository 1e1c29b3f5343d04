"""The web console: an operator's view of one Cairn node, served next to it by `cairn server`.

Contract: the console is only a client of the node. Pages are server-rendered HTML without
scripts; every call to the node is made over HTTP with the logged-in user's own keys (S3 with
boto3, the admin API signed the same way), so a user sees and does exactly what those keys allow.
This module wires the app and owns login, logout, the dashboard and healing; the bucket and
object pages are in `browser`. `serve_console_in_thread` runs it beside the S3 server.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from appliance.console.browser import browser_routes
from appliance.console.node import Node, NodeError, node_errors
from appliance.console.render import render_stream
from appliance.console.sessions import COOKIE, LOGIN_COOKIE, SessionStore
from appliance.console.web import (
    Console,
    Csrf,
    FormRefused,
    LoginRequired,
    SecurityHeaders,
    User,
    safe_next,
    see_other,
)

STATIC = Path(__file__).parent / "static"
HEAL_PROGRESS_EVERY = 2.0
START_TIMEOUT = 15.0


def create_console_app(s3_endpoint: str, region: str = "us-east-1", trust: Sequence[str] = ()) -> FastAPI:
    """The console for the node whose S3 API is at `s3_endpoint` (e.g. http://127.0.0.1:9000).

    `trust`: PEM files trusted beyond the system CAs to verify an https:// endpoint."""
    console = Console(Node(s3_endpoint, region, trust), SessionStore())
    app = FastAPI(title="Cairn console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(LoginRequired, console.on_login_required)
    app.add_exception_handler(FormRefused, console.on_form_refused)
    app.add_exception_handler(NodeError, console.on_node_error)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/")
    def home() -> Response:
        return see_other("/dashboard")

    @app.get("/login")
    def login_form(request: Request, next: str = "/dashboard") -> Response:
        if console.sessions.lookup(request.cookies.get(COOKIE)):
            return see_other(safe_next(next))
        return login_page(next, "", status=200)

    @app.post("/login")
    def login(
        request: Request,
        access_key: Annotated[str, Form()] = "",
        secret_key: Annotated[str, Form()] = "",
        csrf: Csrf = "",
        next: Annotated[str, Form()] = "/dashboard",
    ) -> Response:
        # Login CSRF: the form must come from a login page this browser loaded (double submit).
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not secrets.compare_digest(csrf.encode(), expected.encode()):
            return login_page(next, "The login form expired. Please try again.", status=403)
        if not access_key or not secret_key:
            return login_page(next, "Enter an access key and a secret key.", status=400, access_key=access_key)
        try:
            s3 = console.node.login(access_key, secret_key)
        except NodeError as exc:
            if exc.code == "NodeUnreachable":
                return login_page(next, f"Cannot reach the node at {console.node.endpoint}: {exc.message}",
                                  status=502, access_key=access_key)
            return login_page(next, "Wrong access key or secret key.", status=401, access_key=access_key)
        session = console.sessions.create(access_key, secret_key, s3)
        response = see_other(safe_next(next))
        response.set_cookie(COOKIE, console.sessions.cookie_value(session), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
        response.delete_cookie(LOGIN_COOKIE, path="/login", httponly=True, samesite="strict")
        return response

    def login_page(next_url: str, error: str, status: int, access_key: str = "") -> Response:
        token = secrets.token_urlsafe(32)
        response = console.page(None, "login.html", status=status, title="Log in", error=error,
                                access_key=access_key, login_csrf=token, next=safe_next(next_url))
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", path="/login", max_age=3600)
        return response

    @app.post("/logout")
    def logout(session: User, csrf: Csrf = "") -> Response:
        console.check_csrf(session, csrf)
        console.sessions.drop(session)
        response = see_other("/login")
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @app.get("/dashboard")
    def dashboard(session: User) -> HTMLResponse:
        # The dashboard shows whatever it can get: an operator opens it most when the node is unwell.
        info: dict[str, Any] | None = None
        heal_status: dict[str, Any] | None = None
        buckets: list[str] = []
        problem: NodeError | None = None
        try:
            info = console.node.admin_get(session.credentials, "/info")
            heal_status = console.node.admin_get(session.credentials, "/heal/status")
        except NodeError as exc:
            problem = exc
        try:
            with node_errors():
                buckets = [b["Name"] for b in session.s3.list_buckets().get("Buckets", [])]
        except NodeError as exc:
            problem = problem or exc
        return console.page(session, "dashboard.html", title="Dashboard", info=summarize(info) if info else None,
                            heal_status=heal_status, problem=problem, health=console.node.health(),
                            buckets=buckets)

    @app.post("/heal")
    def heal(session: User, csrf: Csrf = "", bucket: Annotated[str, Form()] = "",
             prefix: Annotated[str, Form()] = "") -> Response:
        console.check_csrf(session, csrf)
        try:
            events = console.node.heal(session.credentials, bucket, prefix if bucket else "")
        except NodeError as exc:
            session.flash("error", f"Heal refused: {exc.code}: {exc.message}")
            return see_other("/dashboard")
        page = render_stream("heal.html", **console.context(session), title="Heal", bucket=bucket,
                             prefix=prefix if bucket else "", events=heal_events(events))
        return StreamingResponse(page, media_type="text/html; charset=utf-8")

    app.include_router(browser_routes(console))
    return app


def summarize(info: dict[str, Any]) -> dict[str, Any]:
    """The admin info document with what the dashboard shows worked out: each drive's state
    (healing wins over online), and drive counts and capacity per set and overall."""
    counts = {"online": 0, "offline": 0, "healing": 0}
    total = free = 0
    sets = []
    for s in info.get("sets", []):
        drives = []
        for d in s.get("drives", []):
            state = "offline" if d.get("state") != "online" else "healing" if d.get("healing") else "online"
            counts[state] += 1
            if state != "offline":
                total += d.get("total", 0)
                free += d.get("free", 0)
            drives.append({**d, "state": state})
        online = sum(1 for d in drives if d["state"] != "offline")
        sets.append({**s, "drives": drives, "online": online,
                     "readable": online >= s.get("read_quorum", 0), "writable": online >= s.get("write_quorum", 0)})
    return {**info, "sets": sets, "counts": counts, "total": total, "free": free}


def heal_events(events: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The heal page's lines: every healed, purged or failed object, progress at most every
    HEAL_PROGRESS_EVERY seconds, then the summary, or an error if the stream broke off."""
    shown = -HEAL_PROGRESS_EVERY
    summary = False
    try:
        for event in events:
            kind = event.get("type")
            if kind == "progress":
                if event.get("elapsed", 0.0) - shown < HEAL_PROGRESS_EVERY:
                    continue
                shown = event.get("elapsed", 0.0)
            summary = summary or kind == "summary"
            yield event
    except NodeError as exc:
        yield {"type": "error", "message": f"{exc.code}: {exc.message}"}
        return
    if not summary:
        yield {"type": "error", "message": "The node ended the heal without a summary."}


class ConsoleThread(threading.Thread):
    """The console's uvicorn server on a daemon thread; `stop()` shuts it down."""

    def __init__(self, server: uvicorn.Server) -> None:
        super().__init__(name="cairn-console", daemon=True)
        self.server = server

    def run(self) -> None:
        # uvicorn calls sys.exit when it cannot listen; here that only ends this thread, and
        # serve_console_in_thread reports it to the caller.
        with contextlib.suppress(SystemExit):
            self.server.run()

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.join(timeout)


def serve_console_in_thread(app: FastAPI, host: str, port: int, ssl_certfile: str | None = None,
                            ssl_keyfile: str | None = None) -> ConsoleThread:
    """Serve `app` on host:port (HTTPS with a certificate and key) from a daemon thread; return once
    the socket listens.

    Raises RuntimeError if the server could not start (uvicorn logs why, e.g. the port is taken).
    """
    # log_config=None: the process that hosts the console owns the logging setup.
    config = uvicorn.Config(app, host=host, port=port, log_config=None, log_level="warning", access_log=False,
                            lifespan="off", server_header=False, timeout_keep_alive=30,
                            ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    thread = ConsoleThread(uvicorn.Server(config))
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not thread.server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            thread.stop(timeout=1.0)
            raise RuntimeError(f"the console could not listen on {host}:{port}")
        time.sleep(0.01)
    return thread
