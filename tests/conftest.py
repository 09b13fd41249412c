"""Suite-wide fixtures: a real PostgreSQL server for the tests that run on it.

``pg_server`` starts one throwaway cluster for the session (tests/pg.py); ``pg_url`` is a
database on it for the session; a test that needs an empty one calls
``pg_server.create_database()``. Without a server binary or the psycopg driver they skip,
naming what is missing.

``pytest --postgres`` runs the whole suite on PostgreSQL: every module gets its own fresh
database through RAG_DB__URL, which the settings read, in place of the SQLite file in its
data dir, and so does every test that uses no module- or session-scoped fixture of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.pg import PostgresServer, unavailable


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--postgres",
        action="store_true",
        help="run every test on a fresh database of a throwaway PostgreSQL server "
        "(through RAG_DB__URL) instead of a SQLite file",
    )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    reason = unavailable()
    if reason:
        pytest.skip(f"no PostgreSQL: {reason}")
    with PostgresServer.start() as server:
        yield server


@pytest.fixture(scope="session")
def pg_url(pg_server: PostgresServer) -> str:
    """A database of the session's server (shared by the tests that take it)."""
    return pg_server.create_database()


def _db_env(request: pytest.FixtureRequest) -> Iterator[None]:
    if not request.config.getoption("--postgres"):
        yield
        return
    reason = unavailable()
    if reason:
        pytest.fail(f"--postgres given but {reason}")
    server: PostgresServer = request.getfixturevalue("pg_server")
    before = os.environ.get("RAG_DB__URL")
    os.environ["RAG_DB__URL"] = server.create_database()
    yield
    if before is None:
        os.environ.pop("RAG_DB__URL", None)
    else:
        os.environ["RAG_DB__URL"] = before


@pytest.fixture(scope="session", autouse=True)
def _postgres_session_db(request: pytest.FixtureRequest) -> Iterator[None]:
    yield from _db_env(request)


@pytest.fixture(scope="module", autouse=True)
def _postgres_module_db(request: pytest.FixtureRequest) -> Iterator[None]:
    yield from _db_env(request)


def _uses_wider_fixtures(request: pytest.FixtureRequest) -> bool:
    """The test reads data a module- or session-scoped fixture of its own made (a world
    built once per module): it must see that fixture's database, not a fresh one."""
    defs = request.node._fixtureinfo.name2fixturedefs  # noqa: SLF001 (pytest has no API)
    return any(
        d.scope != "function"
        and d.func.__module__.startswith("tests.")  # ours, not pytest's tmp_path_factory
        and not name.startswith(("_postgres", "pg_"))
        for name, chain in defs.items()
        for d in chain
    )


@pytest.fixture(autouse=True)
def _postgres_test_db(request: pytest.FixtureRequest) -> Iterator[None]:
    if _uses_wider_fixtures(request):
        yield
        return
    yield from _db_env(request)
