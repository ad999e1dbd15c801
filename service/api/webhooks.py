"""Admin routes of callback deliveries: send one again."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from service.api import responses
from service.api.deps import RuntimeDep, require_scope
from service.auth.keys import Principal, Scope
from service.webhooks.delivery import redeliver
from service.webhooks.repository import DeliveryRepository
from service.webhooks.schemas import DeliveryRead

router = APIRouter(prefix="/api/v1/admin/webhooks", tags=["webhooks"])

_RESPONSES = responses.errors(*responses.AUTH, 404, 422, 503)
_RESPONSES[404] = {**_RESPONSES[404], "description": "No such delivery."}

AdminAccess = Annotated[Principal, Depends(require_scope(Scope.ADMIN))]


@router.post(
    "/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryRead,
    responses=_RESPONSES,
)
async def redeliver_delivery(
    delivery_id: Annotated[uuid.UUID, Path(description="The delivery's id (`X-Reeltrace-Delivery`).")],
    runtime: RuntimeDep,
    principal: AdminAccess,
) -> DeliveryRead:
    """Send a callback delivery again (scope `admin`), whatever its outcome so far.

    The delivery becomes pending with a fresh retry window; a worker's sweep makes the
    attempt within a poll interval, under the same delivery id. The request's detail
    (`deliveries`) and events show it.
    """
    repository = DeliveryRepository(
        runtime.database,
        source_service=runtime.tracker.source_service,
        source_host=runtime.tracker.source_host,
    )
    delivery = await redeliver(repository, runtime.settings, delivery_id, by=f"api:{principal.name}")
    return DeliveryRead.of(delivery)
