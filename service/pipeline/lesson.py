"""The `lesson` pipeline's content stages: retrieving passages, then writing the script.

Retrieval asks the embeddings service for the query's vector when one is configured
(a `gen_ai` CLIENT span, dependency `embedding`), then searches the corpus (a CLIENT
span with `db.system` postgresql, the number of chunks and the best score, dependency
`retrieval`); both go through `ExternalCalls`, so both have a breaker and are counted
in `reeltrace_external_calls_total`. A topic that retrieves nothing fails the stage at
once (`no_passages`, not retried): a lesson is written from its sources, and without
any the script would be invented. The script stage numbers the passages it gives the
writer and keeps them as its citations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from opentelemetry import trace

from service.backends.base import BackendError
from service.backends.factory import Backends
from service.corpus.rows import RetrievedChunk
from service.pipeline.billing import bill_call
from service.pipeline.external_calls import ExternalCalls
from service.pipeline.run_state import RunState
from service.tracking.tracker import RequestTracker

TOP_K = 5


class RetrievalOutput(TypedDict):
    query: str
    method: str
    # Chunks as dicts (a run stored before sources were kept has bare texts).
    chunks: list[Any]


class ScriptOutput(TypedDict):
    script: str
    citations: list[dict[str, Any]]


class NoPassagesFound(BackendError):
    """The corpus has nothing on the topic: the same search finds nothing again."""

    error = "no_passages"
    retryable = False


def lesson_query(state: RunState) -> str:
    return " ".join(filter(None, [state.request.topic, state.request.learning_objective]))


def passages(output: RetrievalOutput) -> list[dict[str, Any]]:
    """The retrieval stage's chunks as dicts (a run stored before sources were kept has bare texts)."""
    return [c if isinstance(c, dict) else {"text": str(c)} for c in output.get("chunks", [])]


class LessonBodies:
    def __init__(self, backends: Backends, calls: ExternalCalls, tracker: RequestTracker) -> None:
        self.backends = backends
        self.calls = calls
        self.tracker = tracker

    async def _query_embedding(self, state: RunState, query: str) -> list[float] | None:
        embedder = self.backends.embeddings
        if embedder is None:
            return None
        return await self.calls.call(
            state.item.id, "embedding", "embed_content", lambda: embedder.embed_query(query),
            attributes={
                "gen_ai.operation.name": "embeddings",
                "gen_ai.provider.name": embedder.provider,
                "gen_ai.request.model": embedder.model,
            },
            span_name=f"embeddings {embedder.model}",
        )  # fmt: skip

    async def rag_retrieval(self, state: RunState, attempt: int) -> RetrievalOutput:
        query = lesson_query(state)
        topic, objective = state.request.topic or "", state.request.learning_objective
        vector = await self._query_embedding(state, query)
        retrieval = self.backends.retrieval
        method = "fulltext" if vector is None else "fused"

        async def search() -> list[RetrievedChunk]:
            found = await retrieval.retrieve(topic, TOP_K, objective=objective, query_embedding=vector)
            # The CLIENT span ExternalCalls opened is current here: the outcome goes on it.
            span = trace.get_current_span()
            span.set_attribute("db.response.returned_rows", len(found))
            span.set_attribute("retrieval.chunk_count", len(found))
            if found:
                span.set_attribute("retrieval.best_score", found[0].score)
            return found

        attributes: dict[str, Any] = {"retrieval.method": method, "retrieval.top_k": TOP_K}
        if retrieval.name == "postgres":
            attributes |= {
                "db.system": "postgresql",
                "db.operation.name": "SELECT",
                "db.collection.name": "corpus_chunks",
            }
        chunks = await self.calls.call(
            state.item.id,
            "retrieval",
            "search",
            search,
            attributes=attributes,
            span_name="retrieval corpus_chunks",
        )
        if not chunks:
            raise NoPassagesFound(
                f"no passage in the corpus matches the topic {topic[:80]!r}: import sources on it "
                "with `reeltrace corpus import`",
                code="no_passages",
            )
        await self.tracker.log_event(
            state.item.id, "passages_retrieved", f"{len(chunks)} passages ({method})", stage="rag_retrieval",
            data={
                "method": method,
                "best_score": chunks[0].score,
                "sources": sorted({c.title for c in chunks}),
            },
        )  # fmt: skip
        return {"query": query, "method": method, "chunks": [c.as_output() for c in chunks]}

    async def script_generation(self, state: RunState, attempt: int) -> ScriptOutput:
        script = self.backends.script
        found = passages(state.output(RetrievalOutput))
        context = [_numbered(n, chunk) for n, chunk in enumerate(found, 1)]
        text = await self.calls.call(
            state.item.id,
            "script",
            "generate_content",
            lambda: script.write_script(state.request.topic or "", state.request.learning_objective, context),
            attributes={
                "gen_ai.operation.name": "generate_content",
                "gen_ai.provider.name": script.provider,
                "gen_ai.request.model": script.model,
            },
            span_name=f"generate_content {script.model}",
        )
        if script.provider != "simulated":  # a real model call is billed per call
            await bill_call(self.tracker, state, script.model, attempt)
        return {"script": text, "citations": _citations(found)}


def _numbered(n: int, chunk: dict[str, Any]) -> str:
    title = chunk.get("title")
    return f"[{n}] {title}: {chunk['text']}" if title else f"[{n}] {chunk['text']}"


def _citations(found: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("title", "source", "licence", "url", "document_id", "chunk_id", "score")
    return [{"ref": n, **{k: chunk.get(k) for k in keys}} for n, chunk in enumerate(found, 1)]
