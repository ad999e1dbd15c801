"""A stage's definition: its name, its body, the type of its output, and its budget.

The body is what the stage does: it takes the pipeline's services (`StageBodies`),
the run's state and the attempt number, and returns the stage's output, which is
stored on the stage row and read back by later stages by its type
(`state.output(GenerationOutput)`), never by the stage's name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic

from service.pipeline.run_state import Out, RunState

if TYPE_CHECKING:
    from service.pipeline.stages import StageBodies


@dataclass(frozen=True, slots=True)
class StageDefinition(Generic[Out]):
    name: str
    output: type[Out]
    body: Callable[[StageBodies, RunState, int], Awaitable[Out]]
    max_retries: int = 3
    timeout_seconds: float = 60.0
    # The dependency whose circuit breaker guards this stage's external calls.
    dependency: str | None = None
