"""The web console against a real server, driven over HTTP as a browser would drive it.

The console runs in this process (`serve_console_in_thread`) against the module's `cairn server`;
a `Browser` keeps cookies, reads CSRF tokens out of the forms it is shown and records every
response, so the secret key can be looked for in all of them at the end.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from appliance.console.app import create_console_app, serve_console_in_thread
from appliance.console.sessions import COOKIE
from tests.functional.faults import apply_faults, restore_all
from tests.functional.payloads import MiB, body
from tests.harness import (
    REGION,
    CairnServer,
    S3Client,
    free_port,
    fresh_bucket_name,
    start_server,
    wait_until,
)

TIMEOUT = 60


class Browser:
    """A cookie-keeping HTTP client that fills in forms' CSRF tokens like a user's browser does."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.seen: list[requests.Response] = []
        self.http.hooks["response"].append(lambda r, *args, **kwargs: self.seen.append(r))
        self.csrf = ""

    def get(self, path: str, **params: Any) -> requests.Response:
        response = self.http.get(self.base + path, params=params, timeout=TIMEOUT)
        self._remember_token(response)
        return response

    def post(self, path: str, data: dict[str, Any] | None = None, files: Any = None,
             csrf: bool = True) -> requests.Response:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf", self.csrf)
        response = self.http.post(self.base + path, data=form, files=files, timeout=TIMEOUT)
        self._remember_token(response)
        return response

    def login(self, access_key: str, secret_key: str) -> requests.Response:
        self.get("/login")
        return self.post("/login", {"access_key": access_key, "secret_key": secret_key})

    def _remember_token(self, response: requests.Response) -> None:
        match = re.search(r'name="csrf" value="([^"]+)"', response.text)
        if match:
            self.csrf = match.group(1)


def flashes(page: requests.Response) -> list[tuple[str, str]]:
    return [(kind, html.unescape(re.sub(r"<[^>]+>", "", text)))
            for kind, text in re.findall(r'class="flash (ok|error)">(.*?)</p>', page.text, re.S)]


def listed_names(page: requests.Response) -> list[str]:
    """The names in a folder listing, as shown (folders end with "/")."""
    rows = re.findall(r'<tr class="(?:folder|object)">.*?<a href="[^"]*">([^<]*)</a>', page.text, re.S)
    return [html.unescape(name) for name in rows if name != ".."]


def next_page(page: requests.Response) -> str | None:
    match = re.search(r'<a href="([^"]*)" rel="next">', page.text)
    return html.unescape(match.group(1)) if match else None


@pytest.fixture(scope="module")
def console(server: CairnServer) -> Iterator[str]:
    port = free_port()
    thread = serve_console_in_thread(create_console_app(server.endpoint, REGION), "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        thread.stop()


@pytest.fixture
def browser(console: str, server: CairnServer) -> Browser:
    b = Browser(console)
    assert b.login(server.access_key, server.secret_key).url == console + "/dashboard"
    return b


def test_serve_returns_once_listening_on_a_daemon_thread(server: CairnServer) -> None:
    port = free_port()
    thread = serve_console_in_thread(create_console_app(server.endpoint), "127.0.0.1", port)
    try:
        assert thread.daemon and thread.is_alive()
        assert requests.get(f"http://127.0.0.1:{port}/login", timeout=TIMEOUT).status_code == 200
        with pytest.raises(RuntimeError, match="could not listen"):
            serve_console_in_thread(create_console_app(server.endpoint), "127.0.0.1", port)
    finally:
        thread.stop()
    assert not thread.is_alive()


def test_the_server_serves_its_own_console(server: CairnServer) -> None:
    page = requests.get(f"http://{server.host}:{server.console_port}/login", timeout=TIMEOUT)
    assert page.status_code == 200 and "Log in to Cairn" in page.text


def test_login_reports_an_unreachable_node() -> None:
    port = free_port()
    thread = serve_console_in_thread(create_console_app(f"http://127.0.0.1:{free_port()}"), "127.0.0.1", port)
    try:
        page = Browser(f"http://127.0.0.1:{port}").login("someone", "some-secret")
        assert page.status_code == 502
        assert "Cannot reach the node" in page.text
    finally:
        thread.stop()


# (access key, secret key) that must not open a session
WRONG_LOGINS = [
    ("root", "wrong"),
    ("cairn-test-root", "not-the-secret"),
    ("nobody-like-this", "cairn-test-root-secret"),
]


@pytest.mark.parametrize(("access_key", "secret_key"), WRONG_LOGINS)
def test_wrong_keys_are_refused(console: str, access_key: str, secret_key: str) -> None:
    b = Browser(console)
    page = b.login(access_key, secret_key)
    assert page.status_code == 401
    assert "Wrong access key or secret key." in page.text
    assert COOKIE not in b.http.cookies
    assert b.get("/dashboard").url.startswith(console + "/login")


def test_login_form_needs_its_own_token(console: str, server: CairnServer) -> None:
    b = Browser(console)
    page = b.post("/login", {"access_key": server.access_key, "secret_key": server.secret_key}, csrf=False)
    assert page.status_code == 403
    assert COOKIE not in b.http.cookies


# Pages and actions that need a session: a GET goes to the login page and comes back after it.
GUARDED_GETS = ["/dashboard", "/buckets", "/buckets/any-bucket?prefix=a%2F", "/buckets/b/object?key=k",
                "/buckets/b/download?key=k"]


@pytest.mark.parametrize("path", GUARDED_GETS)
def test_pages_need_a_session(console: str, server: CairnServer, path: str) -> None:
    b = Browser(console)
    page = b.get(path)
    assert page.url.startswith(console + "/login?next=")
    assert b.post("/login", {"access_key": server.access_key, "secret_key": server.secret_key,
                             "next": path}).history[0].headers["location"] == path


def test_dashboard_shows_the_drives_and_health(browser: Browser, server: CairnServer) -> None:
    page = browser.get("/dashboard")
    assert page.status_code == 200
    assert "4 online, 0 offline, 0 healing" in page.text
    assert len(re.findall(r'<tr class="drive online">', page.text)) == 4
    for drive in server.drives:
        assert html.escape(str(drive)) in page.text
    assert page.text.count('<span class="badge online">OK</span>') == 3
    assert "read quorum 2, write quorum 3" in page.text
    assert "Background healing" in page.text


def test_heal_now_shows_the_summary(browser: Browser, s3: S3Client) -> None:
    name = fresh_bucket_name("heal")
    s3.create_bucket(Bucket=name)
    for i in range(3):
        s3.put_object(Bucket=name, Key=f"k{i}", Body=body(1000 + i, seed=i))
    browser.get("/dashboard")
    page = browser.post("/heal", {"bucket": name})
    assert page.status_code == 200
    assert re.search(r'id="heal-scanned">3<', page.text)
    assert re.search(r'id="heal-failed">0<', page.text)
    assert "Heal complete." in page.text


def test_heal_of_a_missing_bucket_reports_the_error(browser: Browser) -> None:
    browser.get("/dashboard")
    page = browser.post("/heal", {"bucket": fresh_bucket_name("missing")})
    assert page.url.endswith("/dashboard")
    (kind, text), = flashes(page)
    assert kind == "error" and text.startswith("Heal refused:")


def test_heal_now_repairs_a_drive_and_the_dashboard_shows_a_lost_one(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server")
    port = free_port()
    thread = serve_console_in_thread(create_console_app(server.endpoint, REGION), "127.0.0.1", port)
    try:
        s3 = server.client()
        name = fresh_bucket_name("repair")
        s3.create_bucket(Bucket=name)
        for i in range(4):
            s3.put_object(Bucket=name, Key=f"obj-{i}", Body=body(200_000, seed=i))
        apply_faults("delete", [server.drives[1]], name)
        b = Browser(f"http://127.0.0.1:{port}")
        b.login(server.access_key, server.secret_key)
        page = b.post("/heal", {"bucket": name})
        assert re.search(r'id="heal-healed">4<', page.text), page.text
        assert page.text.count('<span class="badge online">healed</span>') == 4

        lost = apply_faults("rename", [server.drives[3]], name)
        try:
            def shows_lost_drive() -> requests.Response | None:
                dashboard = b.get("/dashboard")
                return dashboard if "3 online, 1 offline" in dashboard.text else None

            dashboard = wait_until(shows_lost_drive, timeout=30, interval=0.5,
                                   message="the dashboard to show the lost drive")
            assert dashboard is not None
            assert dashboard.text.count('<tr class="drive offline">') == 1
            assert html.escape(str(server.drives[3])) in dashboard.text
        finally:
            restore_all(lost)
    finally:
        thread.stop()
        server.close()


def test_bucket_and_object_round_trip(browser: Browser, s3: S3Client) -> None:
    name = fresh_bucket_name("console")
    page = browser.post("/buckets", {"name": name})
    assert flashes(page) == [("ok", f"Created bucket {name}.")]
    assert f'href="/buckets/{name}"' in page.text

    data = body(6 * MiB + 5, seed="console-upload")  # large enough for the form parser to spool it to disk
    page = browser.post(f"/buckets/{name}/upload", {"prefix": "docs/"},
                        files=[("file", ("report.bin", data, "application/x-test")),
                               ("file", ("note <b>.txt", b"hello", "text/plain"))])
    assert page.url == f"{browser.base}/buckets/{name}?prefix=docs%2F"
    assert [kind for kind, _ in flashes(page)] == ["ok", "ok"]
    assert listed_names(page) == ["note <b>.txt", "report.bin"]
    assert listed_names(browser.get(f"/buckets/{name}")) == ["docs/"]
    assert s3.head_object(Bucket=name, Key="docs/report.bin")["ContentLength"] == len(data)

    download = browser.get(f"/buckets/{name}/download", key="docs/report.bin")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).digest() == hashlib.sha256(data).digest()
    assert download.headers["content-disposition"].startswith('attachment; filename="report.bin"')
    assert "sandbox" in download.headers["content-security-policy"]

    details = browser.get(f"/buckets/{name}/object", key="docs/report.bin")
    etag = s3.head_object(Bucket=name, Key="docs/report.bin")["ETag"]
    for shown in (f"{len(data)} bytes", etag.strip('"'), "application/x-test"):
        assert shown in details.text

    page = browser.post(f"/buckets/{name}/delete")
    assert flashes(page)[0][0] == "error" and "BucketNotEmpty" in flashes(page)[0][1]

    page = browser.post(f"/buckets/{name}/delete-objects", {"prefix": "docs/", "key": ["docs/note <b>.txt"]})
    assert flashes(page) == [("ok", "Deleted 1 object.")]
    assert listed_names(page) == ["report.bin"]
    page = browser.post(f"/buckets/{name}/object/delete", {"key": "docs/report.bin"})
    assert flashes(page) == [("ok", "Deleted docs/report.bin.")]
    assert "This folder is empty." in page.text

    page = browser.post(f"/buckets/{name}/delete")
    assert flashes(page) == [("ok", f"Deleted bucket {name}.")]
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_object_details_show_user_metadata(browser: Browser, s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="tagged", Body=b"abc", ContentType="text/csv",
                  Metadata={"owner": "ops <team>", "tier": "gold"})
    page = browser.get(f"/buckets/{bucket}/object", key="tagged")
    assert "x-amz-meta-owner</th><td>ops &lt;team&gt;</td>" in page.text
    assert "x-amz-meta-tier</th><td>gold</td>" in page.text
    assert "text/csv" in page.text and "3 bytes" in page.text


def test_folders_and_pages_cover_every_entry(browser: Browser, s3: S3Client, bucket: str) -> None:
    keys = [f"f{i:02d}" for i in range(7)] + ["dir-a/x", "dir-a/y", "dir-b/z", "zz/deep/k"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    seen: list[str] = []
    page = browser.get(f"/buckets/{bucket}", limit=3)
    pages = 1
    while True:
        names = listed_names(page)
        assert 0 < len(names) <= 3
        seen += names
        link = next_page(page)
        if link is None:
            break
        page = browser.get(link)
        pages += 1
    assert seen == ["dir-a/", "dir-b/"] + [f"f{i:02d}" for i in range(7)] + ["zz/"]
    assert pages == 4
    assert listed_names(browser.get(f"/buckets/{bucket}", prefix="zz/deep/")) == ["k"]


def test_user_strings_are_escaped(browser: Browser, s3: S3Client, bucket: str) -> None:
    key = 'x/<script>alert("k")</script>&amp;'
    s3.put_object(Bucket=bucket, Key=key, Body=b"1")
    for page in (browser.get(f"/buckets/{bucket}", prefix="x/"), browser.get(f"/buckets/{bucket}/object", key=key)):
        assert page.status_code == 200
        assert "<script>" not in page.text
        assert "&lt;script&gt;" in page.text


def test_a_missing_bucket_is_a_404_page(browser: Browser) -> None:
    page = browser.get(f"/buckets/{fresh_bucket_name('absent')}")
    assert page.status_code == 404
    assert "NoSuchBucket" in page.text


# (bucket name, error code shown): the node refuses the first, botocore the second before sending.
REFUSED_NAMES = [("Not_A_Valid_Name", "InvalidBucketName"), ("bad name", "InvalidArgument")]


@pytest.mark.parametrize(("name", "code"), REFUSED_NAMES)
def test_a_refused_bucket_shows_the_error(browser: Browser, name: str, code: str) -> None:
    page = browser.post("/buckets", {"name": name})
    (kind, text), = flashes(page)
    assert kind == "error" and text.startswith(f"{code}:")


# (path, form) of every action; sent without the session's token, each must be refused unperformed.
ACTIONS = [
    ("/buckets", {"name": "csrf-victim"}),
    ("/buckets/csrf-kept/delete", {}),
    ("/buckets/csrf-kept/delete-objects", {"key": ["kept"]}),
    ("/buckets/csrf-kept/object/delete", {"key": "kept"}),
    ("/heal", {"bucket": "csrf-kept"}),
    ("/logout", {}),
]


@pytest.fixture(scope="module")
def kept_bucket(s3: S3Client) -> str:
    s3.create_bucket(Bucket="csrf-kept")
    s3.put_object(Bucket="csrf-kept", Key="kept", Body=b"keep me")
    return "csrf-kept"


@pytest.mark.parametrize("token", ["", "forged-token"])
@pytest.mark.parametrize(("path", "form"), ACTIONS)
def test_actions_without_the_token_are_refused(browser: Browser, s3: S3Client, kept_bucket: str,
                                               path: str, form: dict[str, Any], token: str) -> None:
    page = browser.post(path, {**form, "csrf": token}, csrf=False)
    assert page.status_code == 403
    assert "InvalidCSRFToken" in page.text
    assert s3.get_object(Bucket=kept_bucket, Key="kept")["Body"].read() == b"keep me"
    assert "csrf-victim" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert browser.get("/dashboard").url.endswith("/dashboard")


def test_upload_without_the_token_is_refused(browser: Browser, s3: S3Client, kept_bucket: str) -> None:
    page = browser.post(f"/buckets/{kept_bucket}/upload", {"prefix": ""}, files=[("file", ("new", b"x"))],
                        csrf=False)
    assert page.status_code == 403
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=kept_bucket).get("Contents", [])] == ["kept"]


def test_logout_ends_the_session(browser: Browser, console: str) -> None:
    stolen = browser.http.cookies.get(COOKIE) or ""
    assert stolen
    page = browser.post("/logout")
    assert page.url == console + "/login"
    replay = requests.get(console + "/dashboard", cookies={COOKIE: stolen}, timeout=TIMEOUT)
    assert replay.url.startswith(console + "/login")


def test_the_secret_never_leaves_the_server(console: str, server: CairnServer, s3: S3Client) -> None:
    b = Browser(console)
    b.login(server.access_key, "wrong-" + server.secret_key)
    b.login(server.access_key, server.secret_key)
    name = fresh_bucket_name("leak")
    b.post("/buckets", {"name": name})
    b.post(f"/buckets/{name}/upload", {"prefix": ""}, files=[("file", ("f.txt", b"data"))])
    b.get(f"/buckets/{name}/object", key="f.txt")
    b.get(f"/buckets/{name}/download", key="f.txt")
    b.get("/dashboard")
    b.post("/heal", {"bucket": name})
    b.post("/logout")
    session_cookie = ""
    for response in b.seen:
        text = response.content.decode("latin-1")
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        assert server.secret_key not in text and server.secret_key not in headers
        session_cookie = response.cookies.get(COOKIE) or session_cookie
        for cookie in response.raw.headers.getlist("set-cookie"):
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert session_cookie and server.secret_key not in session_cookie
    assert len(b.seen) >= 10
