"""`reeltrace keys create | list | revoke`, run as a subprocess against a real PostgreSQL."""

from __future__ import annotations

import pytest

from service.auth.keys import KEY_RE, KeyVerifier, Scope
from service.auth.repository import ApiKeyRepository
from service.runtime import Runtime
from tests.service.cli.conftest import Cli
from tests.service.cli.piped import run_piped, wrapped_rows

pytestmark = pytest.mark.slow


async def test_create_prints_the_key_as_the_last_line(cli: Cli, runtime: Runtime) -> None:
    """`keys create --scopes read,submit` ends its output with a working key of those scopes."""
    result = cli.run("keys", "create", "--scopes", "read,submit", "--name", "bot")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip().splitlines()[-1]
    assert KEY_RE.match(key)
    principal = await KeyVerifier(ApiKeyRepository(runtime.database)).verify(key)
    assert principal is not None
    assert principal.name == "bot"
    assert principal.scopes == {Scope.READ, Scope.SUBMIT}


def test_unknown_scope_is_refused_with_a_message(cli: Cli) -> None:
    """An unknown scope ends the command with a message naming it, and no traceback."""
    result = cli.run("keys", "create", "--scopes", "read,write")
    assert result.returncode != 0
    assert "unknown scope write" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_list_and_revoke(cli: Cli) -> None:
    """`keys list` shows a key by prefix (never its secret); `keys revoke <prefix>` revokes it."""
    key = cli.run("keys", "create", "--scopes", "read").stdout.strip().splitlines()[-1]
    prefix = key[:11]
    listed = cli.run("keys", "list")
    assert listed.returncode == 0
    assert prefix in listed.stdout
    assert key not in listed.stdout
    revoked = cli.run("keys", "revoke", prefix)
    assert revoked.returncode == 0
    assert f"revoked key {prefix}" in revoked.stdout
    missing = cli.run("keys", "revoke", "rt_nosuchkey")
    assert missing.returncode != 0
    assert "no API key" in missing.stderr


async def test_list_piped_shows_whole_prefixes_and_ids(cli: Cli, runtime: Runtime) -> None:
    """`keys list | cat` prints every prefix and id whole, on one line, so `keys revoke` takes them."""
    key = cli.run("keys", "create", "--scopes", "read", "--name", "a key with a long descriptive name")
    assert key.returncode == 0, key.stderr
    (record,) = await ApiKeyRepository(runtime.database).list_all()
    listed = run_piped(cli, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert "…" not in listed.stdout
    assert wrapped_rows(listed.stdout) == [], listed.stdout
    row = next(line for line in listed.stdout.splitlines() if record.prefix in line)
    assert str(record.id) in row
    assert str(record.created_at)[:19] in row
    revoked = cli.run("keys", "revoke", str(record.id))
    assert revoked.returncode == 0, revoked.stderr


def test_revoking_a_revoked_key_says_so(cli: Cli) -> None:
    """A second `keys revoke` succeeds (it is idempotent) but says the key was already revoked."""
    prefix = cli.run("keys", "create", "--scopes", "read").stdout.strip().splitlines()[-1][:11]
    first = cli.run("keys", "revoke", prefix)
    assert first.returncode == 0, first.stderr
    assert f"revoked key {prefix}" in first.stdout
    again = cli.run("keys", "revoke", prefix)
    assert again.returncode == 0, again.stderr
    assert f"key {prefix} (cli) was already revoked at " in again.stdout
    assert "revoked key" not in again.stdout
