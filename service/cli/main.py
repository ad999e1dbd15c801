"""Entry point of the `reeltrace` command."""

from __future__ import annotations

import typer

from service.cli import (
    analytics,
    budgets,
    corpus,
    database,
    keys,
    notebook,
    request_commands,
    rollups,
    serve,
    webhooks,
)

app = typer.Typer(
    name="reeltrace",
    help="Tracked, observable generative-video requests.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for module in (
    serve,
    database,
    keys,
    budgets,
    request_commands,
    analytics,
    corpus,
    notebook,
    rollups,
    webhooks,
):
    module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
