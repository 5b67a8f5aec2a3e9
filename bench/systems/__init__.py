"""Systems under test, in default order.  One module per library."""
from bench.systems.celery_sys import CeleryPrefork, CeleryThreads
from bench.systems.huey_bare import HueyAttached, HueyBare, HueyDurable
from bench.systems.rq_sys import RQFork, RQSimple
from bench.systems.tq_sys import TQ

ALL = [HueyBare, HueyAttached, HueyDurable, RQSimple, RQFork, CeleryThreads, CeleryPrefork, TQ]
BY_NAME = {c.name: c for c in ALL}
