"""Huey's own test suite (shipped in the huey wheel, `huey.tests`) with every Huey
instance it creates attached to tq: run by tests/test_attach_huey_suite.py in a
process of its own, with tq's settings (TQ_*) in its environment.

Attaching must change nothing Huey's tests can see: results, chords, pipelines,
locks, signals, `.error()` handlers and storages behave as without tq, while
tq records the jobs in its history. Exits 0 when every test passed.
"""
import os
import sys
import unittest

import huey.api

import tq
from tq import attached_claims
from tq.attach import attachment

SKIPPED_MODULES = {  # they need servers or packages this suite does not install
    "huey.tests.test_postgres", "huey.tests.test_django_tasks"}

_init = huey.api.Huey.__init__


# HUEY_SUITE_DURABLE=1: every Redis Huey attached with durable=True (the claims
# around dequeue and execute must change nothing Huey's tests see either).
DURABLE = os.environ.get("HUEY_SUITE_DURABLE") == "1"


_durable: list = []  # their claim keys are deleted at the end (the shared Redis)


def _attached_init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    durable = DURABLE and attached_claims.supports(self)
    tq.attach(self, durable=durable)
    if durable:
        _durable.append(attachment(self).claims)


def main() -> int:
    import pkgutil

    import huey.tests
    huey.api.Huey.__init__ = _attached_init
    names = [f"huey.tests.{info.name}" for info in pkgutil.iter_modules(huey.tests.__path__)
             if info.name.startswith("test_")]
    suite = unittest.TestLoader().loadTestsFromNames(
        [name for name in names if name not in SKIPPED_MODULES])
    result = unittest.TextTestRunner(verbosity=1).run(suite)
    from tq.runtime import current
    current().flush_history(timeout=60)
    claimed = sum(claims.taken for claims in _durable)
    if DURABLE:
        print(f"durable: {len(_durable)} Redis Hueys, {claimed} messages claimed",
              file=sys.stdout)
        if not claimed:  # the claims were not there: the run proved nothing
            return 1
    for claims in _durable:
        try:
            claims.conn.delete(claims.claims_key, claims.claimed_key, claims.losses_key,
                               claims.unfinished_key, claims.quarantine_key)
        except Exception:  # the offline-storage tests' instances
            pass
    return 0 if result.wasSuccessful() and result.testsRun > 300 else 1


if __name__ == "__main__":
    sys.exit(main())
