"""Registering scan files and sending chunk messages (``enqueue``, ``retry-failed``, ``demo``).

The order is what makes enqueue safe to interrupt and re-run:

1. hash and register every file (``db.scans.register_scans``), COMMIT;
2. for each group of chunks: mark its scans ``queued``, COMMIT, then send the messages.

A crash after 1 leaves ``registered`` scans: the next run sends them. A crash between
the commit of 2 and the send leaves ``queued`` scans without a message: the next run
re-sends ``queued`` scans when the broker holds no message at all (nothing waiting,
nothing unacknowledged), so it never doubles a queue that is still being worked on.
Duplicate messages would be harmless anyway (the claim is guarded), only wasteful.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis
from celery import Celery
from sqlalchemy import Engine

from db import scans
from worker.celery_app import READ_QUEUE

#: Chunks marked queued per transaction before their messages go out.
_CHUNKS_PER_COMMIT = 64
#: kombu's Redis transport keeps priority messages in "<queue>\x06\x16<priority>" lists.
_PRIORITY_SEPARATOR = "\x06\x16"


def broker_backlog(broker_url: str, queue: str = READ_QUEUE) -> tuple[int, int]:
    """(messages waiting in ``queue``, messages delivered but not yet acknowledged)."""
    client = redis.Redis.from_url(broker_url)
    try:
        keys = [queue] + [f"{queue}{_PRIORITY_SEPARATOR}{p}" for p in range(1, 10)]
        pipe = client.pipeline()
        for key in keys:
            pipe.llen(key)
        pipe.hlen("unacked")
        *lengths, unacked = pipe.execute()
        return int(sum(lengths)), int(unacked)
    finally:
        client.close()


@dataclass
class EnqueueResult:
    files: int
    registered: int
    already_known: int
    queued_scans: int
    messages: int
    #: queued scans left alone because the broker still holds messages.
    left_in_flight: int


def register_files(
    engine: Engine,
    files: Sequence[Path],
    form: str,
    progress: Callable[[int], None] | None = None,
    batch: int = 2000,
) -> int:
    """Hash ``files`` on a thread pool and register them, committing every ``batch``."""
    registered = 0
    for start in range(0, len(files), batch):
        hashed = []
        for item in scans.hash_files(files[start : start + batch]):
            hashed.append(item)
            if progress:
                progress(1)
        with engine.begin() as connection:
            registered += scans.register_scans(connection, hashed, form)
    return registered


def send_pending(
    engine: Engine,
    app: Celery,
    broker_url: str,
    chunk_size: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int, int]:
    """Queue every scan needing a message, in chunks; return (scans, messages, left_in_flight).

    ``queued`` scans are re-sent only when the broker is empty (see the module docstring).
    """
    waiting, unacked = broker_backlog(broker_url)
    broker_idle = waiting == 0 and unacked == 0
    with engine.connect() as connection:
        ids = scans.pending_scan_ids(connection, include_queued=broker_idle)
        in_flight = (
            0
            if broker_idle
            else len(scans.pending_scan_ids(connection, include_queued=True)) - len(ids)
        )
    chunks = scans.chunked(ids, chunk_size)
    messages = 0
    with app.producer_or_acquire() as producer:
        for start in range(0, len(chunks), _CHUNKS_PER_COMMIT):
            group = chunks[start : start + _CHUNKS_PER_COMMIT]
            with engine.begin() as connection:
                scans.mark_queued(connection, [scan_id for chunk in group for scan_id in chunk])
            for chunk in group:  # only after the commit: a worker must find the rows
                app.send_task(
                    "escrutinio.read_chunk", args=[chunk], queue=READ_QUEUE, producer=producer
                )
                messages += 1
                if progress:
                    progress(len(chunk))
    return len(ids), messages, in_flight
