"""Fixtures of the state tests: one real PostgreSQL cluster for the whole session.

``pg_cluster`` (session)
    A throwaway cluster (``tests.support.pgcluster``), started once (about 3 s)
    and removed at the end. Tests that stop or crash it must start it again.
``pg_url`` (function)
    A URL for the superuser with a schema of its own (``?schema=t_...``): every
    test gets an empty, isolated state without paying for a new database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.pgcluster import Cluster, start_cluster, unique_name


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    if not pg_cluster.running:
        pg_cluster.start()
    return pg_cluster.url(query=f"schema={unique_name('t')}")
