"""Tasks that ship with tq: demo tasks to see every state, and the ingest target."""
