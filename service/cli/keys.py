"""`reeltrace keys`: create, list and revoke API keys (directly in PostgreSQL)."""

from __future__ import annotations

import typer
from rich.table import Table

from service.auth.keys import create_key, parse_scopes, revoke_key
from service.auth.repository import ApiKeyRepository, KeyRecord
from service.cli.common import command_runtime, database_settings, fail, out, run
from service.errors import ValidationFailed

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def create(
    scopes: str = typer.Option(..., help="Comma-separated: submit, read, admin (admin implies all)."),
    name: str = typer.Option("cli", help="What the key is for, shown by `keys list`."),
) -> None:
    """Create a key. It is printed once, as the last line of the output; store it now."""
    try:
        parsed = parse_scopes(scopes)
    except ValidationFailed as exc:
        raise fail(exc.detail) from None
    settings = database_settings()

    async def body() -> tuple[KeyRecord, str]:
        async with command_runtime(settings) as runtime:
            issued = await create_key(ApiKeyRepository(runtime.database), name, parsed)
        return issued.record, issued.key

    record, key = run(body)
    out.print(f"created key {record.prefix} ({record.name}) with scopes {','.join(record.scopes)}")
    out.print("it is shown only now; send it as `Authorization: Bearer <key>`:")
    out.print(key, soft_wrap=True, highlight=False, markup=False)


@keys_app.command("list")
def list_keys() -> None:
    """List keys (prefix, name, scopes, use and revocation); secrets are never shown."""
    settings = database_settings()

    async def body() -> list[KeyRecord]:
        async with command_runtime(settings) as runtime:
            return await ApiKeyRepository(runtime.database).list_all()

    records = run(body)
    table = Table()
    # Fold, never "…": a prefix or id is copied from here into `keys revoke`.
    for column in ("prefix", "name", "scopes", "created", "last used", "revoked", "id"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(
            r.prefix,
            r.name,
            ",".join(r.scopes),
            _when(r.created_at),
            _when(r.last_used_at),
            _when(r.revoked_at),
            str(r.id),
        )
    out.print(table)


@keys_app.command("revoke")
def revoke(ident: str = typer.Argument(..., help="The key's prefix (rt_xxxxxxxx) or id.")) -> None:
    """Revoke a key. API processes stop accepting it within REELTRACE_API_KEY_CACHE_SECONDS."""
    settings = database_settings()

    async def body() -> tuple[KeyRecord, bool]:
        async with command_runtime(settings) as runtime:
            repository = ApiKeyRepository(runtime.database)
            # revoke_key answers alike for a key it revokes and one revoked before (the
            # row keeps its first revocation time), so the key is looked at first.
            matches = await repository.find(ident.strip())
            if len(matches) == 1 and matches[0].revoked_at is not None:
                return matches[0], True
            return await revoke_key(repository, ident), False

    record, already = run(body)
    if already:
        out.print(f"key {record.prefix} ({record.name}) was already revoked at {_when(record.revoked_at)}")
    else:
        out.print(f"revoked key {record.prefix} ({record.name})")


def _when(value: object) -> str:
    return "-" if value is None else str(value)[:19]
