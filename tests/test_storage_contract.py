"""Both queue backends implement the storage contract (tq/storage/contract.py).

What the methods do is checked by the tests that run on both backends (the
`backend` fixture); this checks what a Protocol alone cannot at run time:
that every method of the contract exists on both classes with the same
parameters (names, kinds, defaults) and the same resolved annotations, so the
two cannot drift apart by convention again.
"""
from __future__ import annotations

import inspect
import typing

import pytest

from tq.storage import (
    Control,
    QueueStorage,
    RedisControl,
    SqliteControl,
    TqRedisStorage,
    TqSqliteStorage,
    contract,
    redis,
    sqlite,
)

PAIRS = [(QueueStorage, TqRedisStorage), (QueueStorage, TqSqliteStorage),
         (Control, RedisControl), (Control, SqliteControl)]


def _members(protocol: type) -> list[str]:
    return sorted(name for name, value in vars(protocol).items()
                  if callable(value) and not name.startswith("_"))


def _hints(func, module) -> dict:
    return typing.get_type_hints(func, globalns=vars(module))


@pytest.mark.parametrize("protocol, cls", PAIRS, ids=lambda value: value.__name__)
def test_backend_has_every_method_of_the_contract_with_its_signature(protocol, cls):
    module = inspect.getmodule(cls)
    for name in _members(protocol):
        wanted = getattr(protocol, name)
        assert name in dir(cls), f"{cls.__name__} lacks {name}"
        got = getattr(cls, name)
        wanted_params = list(inspect.signature(wanted).parameters.values())
        got_params = list(inspect.signature(got).parameters.values())
        # Same parameters in the same order; an implementation may only add
        # optional ones at the end.
        assert [(p.name, p.kind, p.default) for p in got_params[:len(wanted_params)]] == \
            [(p.name, p.kind, p.default) for p in wanted_params], f"{cls.__name__}.{name}"
        assert all(p.default is not inspect.Parameter.empty
                   for p in got_params[len(wanted_params):]), f"{cls.__name__}.{name}"
        wanted_hints = _hints(wanted, contract)
        got_hints = _hints(got, module)
        for key, hint in wanted_hints.items():
            assert got_hints.get(key) == hint, (
                f"{cls.__name__}.{name}: {key} is {got_hints.get(key)}, the contract says {hint}")


@pytest.mark.parametrize("protocol", [QueueStorage, Control], ids=lambda p: p.__name__)
def test_contract_methods_say_what_they_guarantee_or_are_plain_reads(protocol):
    # Every method that writes states its atomicity in its docstring; a method
    # without a docstring must be a read (a count or a lookup).
    for name in _members(protocol):
        doc = getattr(protocol, name).__doc__
        assert doc or name.endswith(("_count", "_requested", "_runs", "_get")), name


def test_attributes_of_the_contract_exist_on_both_queue_backends():
    for cls in (TqRedisStorage, TqSqliteStorage):
        init = inspect.signature(cls.__init__).parameters
        assert "queue" in init  # QueueStorage.queue is set from it
    assert redis.TqRedisStorage is TqRedisStorage and sqlite.TqSqliteStorage is TqSqliteStorage
