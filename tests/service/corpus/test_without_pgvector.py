"""A server where the corpus cannot have vectors (no pgvector for the migrating user): full text still works."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from service.backends.base import InvalidBackendRequest
from service.backends.corpus_retrieval import PostgresRetrieval
from service.backends.vertex_embeddings import VertexEmbeddings
from service.corpus.importer import CorpusImporter
from service.corpus.repository import CorpusRepository
from service.db import migrate
from service.db.database import Database
from service.errors import ConfigurationError
from tests.support.pg import PgCluster


@pytest.fixture
async def database(pg_cluster: PgCluster) -> AsyncIterator[Database]:
    """A database migrated by an owner who is not a superuser: pgvector (untrusted) cannot be created."""
    role, database = f"owner_{uuid.uuid4().hex[:8]}", f"novector_{uuid.uuid4().hex[:8]}"
    pg_cluster.execute(f'CREATE ROLE "{role}" LOGIN')
    pg_cluster.execute(f'CREATE DATABASE "{database}" OWNER "{role}"')
    url = pg_cluster.url(database).replace("postgres:@", f"{role}:@", 1)
    migrate.upgrade(url)
    db = Database(url)
    yield db
    await db.close()
    pg_cluster.drop_database(database)
    pg_cluster.execute(f'DROP ROLE "{role}"')


async def test_the_corpus_is_created_without_the_embedding_column(database: Database) -> None:
    """The migration completes, without `embedding`, and the sample is searchable by full text."""
    repository = CorpusRepository(database)
    assert await repository.has_embedding_column() is False
    found = await repository.search("photosynthesis", 5)
    assert len(found) == 5


async def test_embeddings_are_refused_naming_the_missing_column(
    database: Database, embedder: VertexEmbeddings
) -> None:
    """An import with embeddings, and a retrieval given a query vector, both fail naming the column."""
    repository = CorpusRepository(database)
    with pytest.raises(ConfigurationError, match="no embedding column"):
        await CorpusImporter(repository, embedder).run([])
    with pytest.raises(InvalidBackendRequest, match="no embedding column"):
        await PostgresRetrieval(repository).retrieve("photosynthesis", query_embedding=[0.0] * 768)
