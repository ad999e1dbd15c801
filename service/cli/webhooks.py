"""`reeltrace webhooks redeliver ID`: send a callback delivery again (directly in PostgreSQL)."""

from __future__ import annotations

import os
import socket
import uuid

import typer

from service.cli.common import command_runtime, fail, one_shot_settings, out, run
from service.webhooks.delivery import redeliver as redeliver_delivery
from service.webhooks.repository import Delivery, DeliveryRepository

webhooks_app = typer.Typer(help="Callback deliveries.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("redeliver")
def redeliver(
    delivery: str = typer.Argument(..., help="The delivery's id (`X-Reeltrace-Delivery`)."),
) -> None:
    """Send a callback delivery again, whatever its outcome; a worker's sweep sends it."""
    try:
        delivery_id = uuid.UUID(delivery)
    except ValueError:
        raise fail(f"{delivery!r} is not a delivery id (a UUID, as in X-Reeltrace-Delivery)") from None
    settings = one_shot_settings()

    async def body() -> Delivery:
        async with command_runtime(settings) as runtime:
            repository = DeliveryRepository(
                runtime.database, source_service="cli", source_host=socket.gethostname()
            )
            return await redeliver_delivery(repository, settings, delivery_id, by=f"cli:{os.getpid()}")

    found = run(body)  # an unknown id ends it with "no webhook delivery <id>"
    out.print(
        f"delivery {found.id} of request {found.request_id} ({found.event}) is pending again:"
        " a worker sends it within its poll interval",
        soft_wrap=True,
        highlight=False,
    )
