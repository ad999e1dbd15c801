"""A lesson's retrieval is traced: a CLIENT span for the corpus search, a gen_ai span for the embedding."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from service.backends.factory import build_backends
from service.runtime import Runtime
from service.settings import Settings
from tests.support.vertex_fake import VertexFake
from tests.support.workers import running_worker, wait_terminal
from tests.telemetry.test_tracing import of_trace

LESSON = {"pipeline": "lesson", "topic": "photosynthesis", "learning_objective": "name its reactants"}


@pytest.fixture
def vertex() -> Iterator[VertexFake]:
    with VertexFake() as fake:
        yield fake


async def _lesson_trace(
    client: httpx.AsyncClient, runtime: Runtime, spans: InMemorySpanExporter, settings: Settings
) -> list[ReadableSpan]:
    response = await client.post("/api/v1/requests", json={"user_id": "t", "prompt": "a leaf", **LESSON})
    assert response.status_code == 202, response.text
    accepted = response.json()
    backends = build_backends(settings, runtime.database)
    async with running_worker(runtime, backends=backends):
        await wait_terminal(runtime, [accepted["id"]])
    return of_trace(list(spans.get_finished_spans()), accepted["trace_id"])


async def test_corpus_search_is_a_client_span_under_the_stage(
    client: httpx.AsyncClient, runtime: Runtime, spans: InMemorySpanExporter, settings: Settings
) -> None:
    """The search is a CLIENT span with db.system postgresql, its chunk count and best score, under the stage."""
    trace = await _lesson_trace(client, runtime, spans, settings)
    [search] = [s for s in trace if s.name == "retrieval corpus_chunks"]
    stage = next(s for s in trace if s.name == "stage rag_retrieval")
    assert search.kind == SpanKind.CLIENT
    assert search.parent is not None
    assert search.parent.span_id == stage.context.span_id  # type: ignore[union-attr]
    attributes = dict(search.attributes or {})
    assert attributes["db.system"] == "postgresql"
    assert attributes["retrieval.method"] == "fulltext"
    assert attributes["retrieval.chunk_count"] == 5
    assert isinstance(attributes["retrieval.best_score"], float)
    assert attributes["retrieval.best_score"] > 0


async def test_query_embedding_is_a_gen_ai_span_under_the_stage(
    client: httpx.AsyncClient,
    runtime: Runtime,
    spans: InMemorySpanExporter,
    settings: Settings,
    vertex: VertexFake,
) -> None:
    """With embeddings on, the query's embedding is a gen_ai CLIENT span under the stage, before the search."""
    embedding = settings.model_copy(
        update={
            "embeddings_backend": "vertex",
            "google_cloud_project": "reeltrace-test",
            "vertex_base_url": vertex.base_url,
        }
    )
    trace = await _lesson_trace(client, runtime, spans, embedding)
    [embed] = [s for s in trace if s.name == "embeddings text-embedding-005"]
    [search] = [s for s in trace if s.name == "retrieval corpus_chunks"]
    stage = next(s for s in trace if s.name == "stage rag_retrieval")
    assert embed.kind == SpanKind.CLIENT
    assert embed.parent is not None
    assert embed.parent.span_id == stage.context.span_id  # type: ignore[union-attr]
    attributes = dict(embed.attributes or {})
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert attributes["gen_ai.request.model"] == "text-embedding-005"
    assert (embed.end_time or 0) <= (search.start_time or 0)
    assert dict(search.attributes or {})["retrieval.method"] == "fused"
