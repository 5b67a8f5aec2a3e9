"""Watched-folder ingest: files dropped in the inbox become jobs, routed by event type.

formats.py (streaming readers), claims.py (moving files between the folders),
pipeline.py (one file -> jobs, exactly once), watcher.py (the inbox watcher);
their verbs (`tq watch`, `tq ingest`) are in tq.cli.ingest.
"""
