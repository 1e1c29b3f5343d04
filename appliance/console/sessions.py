"""Console sessions: who is logged in, kept in this process's memory only.

Contract: a session is created only after the node accepted the user's keys. The browser holds a
signed, random session id and nothing else; the secret key stays here, in memory, until logout or
expiry, and is never written to a cookie, a page or a log (`repr` leaves it out). Every session has
its own CSRF token, and every form that changes something must send it back. A restart of the
process forgets every session, which only means logging in again.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.credentials import Credentials
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "cairn_console_session"
LOGIN_COOKIE = "cairn_console_login"
IDLE_TIMEOUT = 3600.0
MAX_AGE = 12 * 3600.0


@dataclass
class Session:
    id: str = field(repr=False)
    access_key: str
    secret_key: str = field(repr=False)
    csrf: str = field(repr=False)
    s3: Any = field(repr=False)
    created: float
    seen: float
    flashes: list[tuple[str, str]] = field(default_factory=list, repr=False)

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.access_key, self.secret_key)

    def flash(self, kind: str, text: str) -> None:
        """Keep a message ("ok" or "error") for the next page this session sees."""
        self.flashes.append((kind, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken

    def csrf_ok(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.csrf.encode())


class SessionStore:
    """Sessions by id, thread-safe; an idle or too old session is gone when next looked up."""

    def __init__(self, idle_timeout: float = IDLE_TIMEOUT, max_age: float = MAX_AGE) -> None:
        self.idle_timeout = idle_timeout
        self.max_age = max_age
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        # A fresh key per process: a restart invalidates every cookie along with the sessions.
        self._signer = URLSafeTimedSerializer(secrets.token_bytes(32), salt="cairn-console-session")

    def create(self, access_key: str, secret_key: str, s3: Any) -> Session:
        now = time.monotonic()
        session = Session(id=secrets.token_urlsafe(32), access_key=access_key, secret_key=secret_key,
                          csrf=secrets.token_urlsafe(32), s3=s3, created=now, seen=now)
        with self._lock:
            self._expire(now)
            self._sessions[session.id] = session
        return session

    def lookup(self, cookie: str | None) -> Session | None:
        """The live session a cookie names, or None for a missing, forged, expired or unknown one."""
        if not cookie:
            return None
        try:
            session_id = self._signer.loads(cookie, max_age=int(self.max_age))
        except BadSignature:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(str(session_id))
            if session is None:
                return None
            if self._stale(session, now):
                del self._sessions[session.id]
                return None
            session.seen = now
            return session

    def drop(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def cookie_value(self, session: Session) -> str:
        return self._signer.dumps(session.id)

    def _stale(self, session: Session, now: float) -> bool:
        return now - session.seen > self.idle_timeout or now - session.created > self.max_age

    def _expire(self, now: float) -> None:
        for session_id in [s.id for s in self._sessions.values() if self._stale(s, now)]:
            del self._sessions[session_id]
