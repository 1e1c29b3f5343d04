"""Request plumbing shared by every console page: who is asking, whether a form is genuine, and
how an answer (a page, a redirect, a refusal) is made.

Contract: a route that needs a user takes a `User` parameter; without a live session a GET is
sent to the login page (and back afterwards) and anything else is sent there undone. A route
that changes something calls `Console.check_csrf` before anything else. Failures of the node on a page
become an error page with the node's code and message; failures of an action become a message
on the page the browser is sent back to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appliance.console.node import Node, NodeError, node_errors
from appliance.console.render import render, url
from appliance.console.sessions import COOKIE, Session, SessionStore

# No script runs on any page, nothing is framed and forms post only to the console itself.
PAGE_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
               "frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "content-security-policy": PAGE_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # Object keys travel in query strings; they should not leak to other sites.
    "referrer-policy": "no-referrer",
}


class LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class FormRefused(Exception):
    """A state-changing request without this session's CSRF token."""


class SecurityHeaders:
    """Adds the security headers to every response that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if not static:
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def safe_next(target: str) -> str:
    """Where to go after login: only a path on this console, never another site."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/dashboard"


def see_other(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


@dataclass
class Console:
    """What every route shares: the node, the sessions, and how pages are answered."""

    node: Node
    sessions: SessionStore

    def user(self, request: Request) -> Session:
        """The logged-in session, or LoginRequired."""
        session = self.sessions.lookup(request.cookies.get(COOKIE))
        if session is None:
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(here if request.method == "GET" else "/dashboard")
        return session

    @staticmethod
    def check_csrf(session: Session, token: str) -> None:
        if not session.csrf_ok(token):
            raise FormRefused()

    def context(self, session: Session | None) -> dict[str, Any]:
        """What every page's frame shows: who is logged in, the form token, pending messages."""
        return {
            "user": session.access_key if session else None,
            "csrf": session.csrf if session else "",
            "flashes": session.take_flashes() if session else [],
            "endpoint": self.node.endpoint,
        }

    def page(self, session: Session | None, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(render(template, **self.context(session), **context), status_code=status)

    def error_page(self, request: Request, status: int, title: str, code: str, message: str) -> HTMLResponse:
        session = self.sessions.lookup(request.cookies.get(COOKIE))
        return self.page(session, "error.html", status=status, title=title, code=code, message=message)

    async def on_login_required(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        response = see_other(url("/login", next=exc.next_url))
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def on_form_refused(self, request: Request, exc: Exception) -> Response:
        return self.error_page(request, 403, "Form refused", "InvalidCSRFToken",
                               "This form did not come from this console session. Reload the page and try again.")

    async def on_node_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NodeError)
        # A refusal by the node keeps its status; the node being unreachable is a bad gateway.
        status = exc.status if 400 <= exc.status < 600 else 502
        title = "Cannot reach the node" if exc.code == "NodeUnreachable" else "The node refused"
        return self.error_page(request, status, title, exc.code, exc.message)


async def current_user(request: Request) -> Session:
    """FastAPI dependency of every page that needs a user (the console is in the app's state)."""
    console: Console = request.app.state.console
    return console.user(request)


User = Annotated[Session, Depends(current_user)]
Csrf = Annotated[str, Form()]


@contextlib.contextmanager
def reported(session: Session) -> Iterator[None]:
    """Run an action; if the node refuses, keep its code and message for the next page instead."""
    try:
        with node_errors():
            yield
    except NodeError as exc:
        session.flash("error", f"{exc.code}: {exc.message}")
