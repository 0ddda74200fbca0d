"""Fixtures for the real services: RabbitMQ (a fresh vhost per run), PostgreSQL (a fresh database per run), SQLite.

The broker and the databases persist between runs on these machines, so every run isolates itself and removes
what it created. A missing service is an error, never a skip.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import psycopg
import pytest

#: Where the machine's services listen (see DESIGN.md, "Real parts").
RABBITMQ_HOST = "127.0.0.1"
POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    """AMQP URL of a fresh RabbitMQ vhost, deleted after the run."""
    vhost = f"bt-test-{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    url = f"amqp://guest:guest@{RABBITMQ_HOST}:5672/{vhost}"
    # Fail loudly (not skip) when the broker is not there.
    pika.BlockingConnection(pika.URLParameters(url)).close()
    yield url
    _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a fresh PostgreSQL database, dropped after the run."""
    name = f"bt_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """SQLAlchemy URL of a fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'jobs.db'}"


def fresh_postgres_schema(postgres_url: str) -> str:
    """A new schema in the run's database; the URL returned makes it the connection's search path."""
    schema = f"s_{uuid.uuid4().hex[:12]}"
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{postgres_url}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The job store on each supported backend, empty for each test (a SQLite file or a PostgreSQL schema)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return fresh_postgres_schema(str(request.getfixturevalue("postgres_url")))
