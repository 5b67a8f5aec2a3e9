"""Huey's own test suite (shipped in the huey wheel, `huey.tests`) with every Huey
instance it creates attached to tq: run by tests/test_attach_huey_suite.py in a
process of its own, with tq's settings (TQ_*) in its environment.

Attaching must change nothing Huey's tests can see: results, chords, pipelines,
locks, signals, `.error()` handlers and storages behave as without tq, while
tq records the jobs in its history. Exits 0 when every test passed.
"""
import sys
import unittest

import huey.api

import tq

SKIPPED_MODULES = {  # they need servers or packages this suite does not install
    "huey.tests.test_postgres", "huey.tests.test_django_tasks"}

_init = huey.api.Huey.__init__


def _attached_init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    tq.attach(self)


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
    return 0 if result.wasSuccessful() and result.testsRun > 300 else 1


if __name__ == "__main__":
    sys.exit(main())
