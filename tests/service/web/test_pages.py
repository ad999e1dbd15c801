"""The page's HTML routes over HTTP: redirects, the login exchange, docs and vendored assets."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.runtime import Runtime
from service.settings import Settings
from service.web.assets import STATIC_DIR

WEB = Path(__file__).resolve().parents[3] / "service" / "web"


async def _key(make_key: Callable[..., object], *scopes: str) -> str:
    headers = await make_key(*scopes)  # type: ignore[misc]
    return str(headers["Authorization"]).removeprefix("Bearer ")


async def test_root_redirects_to_the_page(client: httpx.AsyncClient) -> None:
    """GET / redirects to /monitoring."""
    response = await client.get("/")
    assert (response.status_code, response.headers["location"]) == (307, "/monitoring")


async def test_without_a_session_the_page_carries_no_data(client: httpx.AsyncClient) -> None:
    """/monitoring without a cookie is the login form, with no boot data and no scripts."""
    response = await client.get("/monitoring")
    assert response.status_code == 200
    assert 'name="api_key"' in response.text
    assert 'id="boot"' not in response.text
    assert "<script" not in response.text


@pytest.mark.parametrize(
    ("scopes", "status", "message"),
    [((), 401, "Invalid or revoked"), (("submit",), 403, "lacks the `read` scope")],
)
async def test_login_refuses_a_key_that_cannot_read(
    client: httpx.AsyncClient,
    make_key: Callable[..., object],
    scopes: tuple[str, ...],
    status: int,
    message: str,
) -> None:
    """An unknown key is 401, a key without `read` is 403; both get the form back and no cookie."""
    key = await _key(make_key, *scopes) if scopes else "rt_" + "z" * 43
    response = await client.post("/monitoring/login", data={"api_key": key})
    assert response.status_code == status
    assert message in response.text
    assert "set-cookie" not in response.headers


async def test_login_sets_a_strict_httponly_expiring_cookie(
    client: httpx.AsyncClient, make_key: Callable[..., object]
) -> None:
    """A read key gets 303 to the page and a cookie that is HttpOnly, SameSite=Strict and expires."""
    response = await client.post("/monitoring/login", data={"api_key": await _key(make_key, "read")})
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert all(part in cookie for part in ("httponly", "samesite=strict", "max-age=43200", "path=/"))


@pytest.mark.parametrize(
    ("next_url", "location"),
    [
        ("/monitoring/requests/vvd_1_abcdef12", "/monitoring/requests/vvd_1_abcdef12"),
        ("https://evil.test/", "/monitoring"),
        ("//evil.test", "/monitoring"),
    ],
)
async def test_login_returns_only_into_the_page(
    client: httpx.AsyncClient, make_key: Callable[..., object], next_url: str, location: str
) -> None:
    """After login the browser goes back to the page URL it asked for, never to another site."""
    response = await client.post(
        "/monitoring/login", data={"api_key": await _key(make_key, "read"), "next": next_url}
    )
    assert response.headers["location"] == location


async def test_logout_clears_the_cookie(client: httpx.AsyncClient, make_key: Callable[..., object]) -> None:
    """Signing out expires the cookie: the API refuses the browser again."""
    await client.post("/monitoring/login", data={"api_key": await _key(make_key, "read")})
    response = await client.post("/monitoring/logout")
    assert (response.status_code, response.headers["location"]) == (303, "/monitoring")
    assert (await client.get("/api/v1/monitoring/dashboard")).status_code == 401


async def test_keys_not_required_skips_the_login(settings: Settings, runtime: Runtime) -> None:
    """With REELTRACE_API_KEYS_REQUIRED=false the page opens straight away."""
    app = create_app(settings.model_copy(update={"api_keys_required": False}), runtime)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://reeltrace.test") as c:
            response = await c.get("/monitoring")
    assert 'id="boot"' in response.text
    assert 'name="api_key"' not in response.text


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_docs_load_nothing_from_another_host(client: httpx.AsyncClient, path: str) -> None:
    """/docs and /redoc load their scripts, styles and icon from /static, and each answers 200."""
    html = (await client.get(path)).text
    urls = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
    assert urls
    assert all(u.startswith("/") for u in urls), urls
    for url in urls:
        if url.startswith("/static/"):
            assert (await client.get(url)).status_code == 200, url


def test_every_vendored_library_ships_with_its_licence() -> None:
    """Each folder under static/vendor is `<name>-<version>` and holds a LICENSE."""
    folders = sorted((STATIC_DIR / "vendor").iterdir())
    assert len(folders) == 3
    for folder in folders:
        assert re.fullmatch(r"[a-z-]+-\d+\.\d+\.\d+", folder.name), folder.name
        assert (folder / "LICENSE").is_file(), folder


def test_package_data_ships_every_page_file() -> None:
    """Every template, script, style and vendored file matches a package-data pattern (a
    non-editable install has them all)."""
    pyproject = tomllib.loads((WEB.parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["service.web"]
    files = [
        p.relative_to(WEB).as_posix()
        for p in WEB.rglob("*")
        if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts
    ]
    missing = [f for f in files if not any(fnmatch.fnmatch(f, pattern) for pattern in patterns)]
    assert files
    assert missing == []
