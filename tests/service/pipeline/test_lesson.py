"""The lesson pipeline on the embedded default: passages retrieved from the corpus reach the script."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from service.backends.base import ScriptBackend
from service.backends.factory import build_backends
from service.corpus.importer import CorpusImporter
from service.corpus.repository import CorpusRepository
from service.corpus.seed import sample_files
from service.runtime import Runtime
from service.settings import Settings
from telemetry.metrics import get_metrics
from tests.support.vertex_fake import VertexFake
from tests.support.workers import events_of, run_to_end, running_worker, submit, wait_idle, wait_terminal

PHOTOSYNTHESIS = {"topic": "photosynthesis", "learning_objective": "explain the light-dependent reactions"}


class RecordingScript:
    """The configured script backend, keeping the passages each call was given."""

    def __init__(self, inner: ScriptBackend) -> None:
        self.inner = inner
        self.name, self.provider, self.model = inner.name, inner.provider, inner.model
        self.contexts: list[list[str]] = []

    async def write_script(self, topic: str, objective: str | None, context: list[str]) -> str:
        self.contexts.append(list(context))
        return await self.inner.write_script(topic, objective, context)


def _external_calls(dependency: str, outcome: str) -> float:
    value = get_metrics().registry.get_sample_value(
        "reeltrace_external_calls_total", {"dependency": dependency, "outcome": outcome}
    )
    return value or 0.0


async def test_the_script_stage_receives_the_retrieved_passages(runtime: Runtime, settings: Settings) -> None:
    """A lesson completes; its script was written from the five stored passages, cited in its output."""
    backends = build_backends(settings, runtime.database)
    script = RecordingScript(backends.script)
    backends = dataclasses.replace(backends, script=script)
    [rid] = await submit(runtime, pipeline="lesson", parameters=PHOTOSYNTHESIS)
    read = (await run_to_end(runtime, [rid], backends=backends))[rid]

    assert read.status == "completed", read.error_message
    stages = {s.name: s.output or {} for s in read.stages}
    chunks = stages["rag_retrieval"]["chunks"]
    assert stages["rag_retrieval"]["method"] == "fulltext"
    assert len(chunks) == 5
    assert all("Photosynthesis" in c["title"] and c["licence"] == "CC-BY-4.0" for c in chunks)
    [context] = script.contexts
    assert context == [f"[{n}] {c['title']}: {c['text']}" for n, c in enumerate(chunks, 1)]
    citations = stages["script_generation"]["citations"]
    assert [(c["ref"], c["chunk_id"], c["url"]) for c in citations] == [
        (n, c["chunk_id"], c["url"]) for n, c in enumerate(chunks, 1)
    ]


async def test_retrieval_is_recorded_as_an_event(runtime: Runtime) -> None:
    """The stage writes a passages_retrieved event naming the method, best score and source titles."""
    [rid] = await submit(runtime, pipeline="lesson", parameters=PHOTOSYNTHESIS)
    await run_to_end(runtime, [rid])
    [event] = await events_of(runtime, rid, "passages_retrieved")
    assert event.stage_name == "rag_retrieval"
    assert event.data["method"] == "fulltext"
    assert event.data["best_score"] > 0
    assert "Overview of Photosynthesis" in event.data["sources"]


async def test_a_topic_with_no_passages_fails_without_inventing_any(
    runtime: Runtime, settings: Settings
) -> None:
    """A topic the corpus does not cover fails rag_retrieval at once (no_passages); no script is written."""
    backends = build_backends(settings, runtime.database)
    script = RecordingScript(backends.script)
    [rid] = await submit(runtime, pipeline="lesson", parameters={"topic": "medieval castles"})
    read = (await run_to_end(runtime, [rid], backends=dataclasses.replace(backends, script=script)))[rid]

    assert read.status == "failed"
    assert read.error_stage == "rag_retrieval"
    assert "no passage in the corpus matches the topic 'medieval castles'" in (read.error_message or "")
    assert read.error_details is not None
    assert read.error_details["code"] == "no_passages"
    stages = {s.name: s for s in read.stages}
    assert stages["rag_retrieval"].attempts == 1
    assert stages["script_generation"].status == "skipped"
    assert script.contexts == []


@pytest.fixture
def vertex() -> Iterator[VertexFake]:
    with VertexFake() as fake:
        yield fake


async def test_with_embeddings_the_query_is_embedded_and_rankings_fused(
    runtime: Runtime, settings: Settings, vertex: VertexFake
) -> None:
    """With the embeddings backend on the Vertex fake, the stage embeds the query and fuses both rankings."""
    embedding = settings.model_copy(
        update={
            "embeddings_backend": "vertex",
            "google_cloud_project": "reeltrace-test",
            "vertex_base_url": vertex.base_url,
        }
    )
    backends = build_backends(embedding, runtime.database)
    assert backends.embeddings is not None
    await CorpusImporter(CorpusRepository(runtime.database), backends.embeddings).run(sample_files())
    before = _external_calls("embedding", "success")
    [rid] = await submit(runtime, pipeline="lesson", parameters=PHOTOSYNTHESIS)
    read = (await run_to_end(runtime, [rid], backends=backends))[rid]

    assert read.status == "completed", read.error_message
    output = next(s.output for s in read.stages if s.name == "rag_retrieval") or {}
    assert output["method"] == "fused"
    assert any(c["vector_rank"] is not None for c in output["chunks"])
    queries = [i for r in vertex.requests_to("predict") for i in r.body["instances"]]
    assert {"content": output["query"], "task_type": "RETRIEVAL_QUERY"} in queries
    assert _external_calls("embedding", "success") == before + 1


async def test_embedding_failures_are_retried_counted_and_seen_by_the_breaker(
    runtime: Runtime, settings: Settings, vertex: VertexFake
) -> None:
    """Two 503s from the embeddings service: the stage is retried to success, both errors are counted
    in reeltrace_external_calls_total, and the embedding breaker recorded them."""
    embedding = settings.model_copy(
        update={
            "embeddings_backend": "vertex",
            "google_cloud_project": "reeltrace-test",
            "vertex_base_url": vertex.base_url,
        }
    )
    backends = build_backends(embedding, runtime.database)
    vertex.fail_next(503, route="predict", times=2)
    errors = _external_calls("embedding", "error")
    [rid] = await submit(runtime, pipeline="lesson", parameters=PHOTOSYNTHESIS)
    async with running_worker(runtime, backends=backends) as (worker, services):
        await wait_terminal(runtime, [rid])
        await wait_idle(worker)
        breaker = services.breakers["embedding"]
        assert breaker.failure_count == 2
    read = await runtime.queries.get_request(rid)
    assert read.status == "completed", read.error_message
    assert next(s for s in read.stages if s.name == "rag_retrieval").attempts == 3
    assert _external_calls("embedding", "error") == errors + 2
