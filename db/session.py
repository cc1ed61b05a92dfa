"""Engines and transactions.

One engine per process and URL. Worker processes forked from a parent that already
had an engine call ``dispose_after_fork()`` so they never share the parent's sockets
(SQLAlchemy docs, "Using Connection Pools with Multiprocessing or os.fork()").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

_engines: dict[str, Engine] = {}


def sqlalchemy_url(url: str) -> str:
    """``url`` with the psycopg2 driver named (SQLAlchemy 2.1 defaults to psycopg 3)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def get_engine(url: str) -> Engine:
    """The process's engine for ``url`` (created on first use)."""
    engine = _engines.get(url)
    if engine is None:
        engine = create_engine(sqlalchemy_url(url), pool_pre_ping=True)
        _engines[url] = engine
    return engine


def dispose_after_fork() -> None:
    """Drop inherited pooled connections without closing the parent's sockets."""
    for engine in _engines.values():
        engine.dispose(close=False)


@contextmanager
def transaction(url: str) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any exception."""
    factory = sessionmaker(get_engine(url), expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


def dispose_all() -> None:
    """Close every pooled connection of this process (tests dropping databases)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
