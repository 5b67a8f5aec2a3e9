"""The built-in ingest target: store an event in the history database."""
from __future__ import annotations

import time

import tq
from tq.models import Event
from tq.serializer import dumps_json


@tq.task(retries=3, retry_delay=1)
def store_event(event: dict, source: str | None = None, event_type: str | None = None) -> None:
    """Keep one ingested event (idempotent: a re-run of the same job stores it once).

    `event_type` is given by the ingest path, which knows the configured type field."""
    tq.current().migrate_history()  # a writer: the schema current, the models bound
    job_id = tq.current_job_id() or f"direct-{time.time_ns()}"
    type_name = str(event_type if event_type is not None else event.get("type", ""))[:200]
    Event.insert(job_id=job_id, type=type_name, payload=dumps_json(event),
                 source=(source or "")[:255], received_at=time.time()
                 ).on_conflict_ignore().execute()
