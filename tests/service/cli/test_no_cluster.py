"""One-shot commands find the database `serve` made, or say where they looked; never make one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service.cli.conftest import Cli

pytestmark = pytest.mark.slow


@pytest.fixture
def no_cluster(cli: Cli, tmp_path: Path) -> tuple[Cli, Path]:
    """The command with no DATABASE_URL, no REELTRACE_DATA_DIR and an empty user data home."""
    home = tmp_path / "xdg"
    env = {k: v for k, v in cli.env.items() if k not in {"DATABASE_URL", "REELTRACE_DATA_DIR"}}
    env["XDG_DATA_HOME"] = str(home)
    return Cli(env), home / "reeltrace"


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "list"),
        ("keys", "create", "--scopes", "read"),
        ("keys", "revoke", "rt_abcdefgh"),
        ("migrate",),
        ("backfill",),
        ("cleanup",),
        ("export",),
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_one_shot_command_without_a_cluster_says_where_it_looked(
    no_cluster: tuple[Cli, Path], args: tuple[str, ...], tmp_path: Path
) -> None:
    """Without a cluster, the command fails in one line naming the directory and `reeltrace serve`,
    and creates nothing there."""
    cli, data_dir = no_cluster
    result = cli.run(*args, REQUEST_RETENTION_DAYS="30")
    assert result.returncode == 1, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert message.startswith("error: no reeltrace database: DATABASE_URL is unset")
    assert f"no embedded PostgreSQL in {data_dir / 'pgdata'}" in message
    assert "start one with `reeltrace serve`" in message
    assert "Traceback" not in result.stderr
    assert not (data_dir / "pgdata").exists()


def test_the_data_dir_setting_wins_over_the_user_default(
    no_cluster: tuple[Cli, Path], tmp_path: Path
) -> None:
    """REELTRACE_DATA_DIR, when set, is where the command looks."""
    cli, _ = no_cluster
    elsewhere = tmp_path / "elsewhere"
    result = cli.run("keys", "list", REELTRACE_DATA_DIR=str(elsewhere))
    assert result.returncode == 1
    assert str(elsewhere / "pgdata") in " ".join(result.stderr.split())
    assert not (elsewhere / "pgdata").exists()
