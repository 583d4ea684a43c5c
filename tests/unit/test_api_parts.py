"""The read API's parts without a server: token buckets, the answer cache, trace ids and the key scrubber."""

from __future__ import annotations

import asyncio

import pytest

from ticklake.api.app import Call
from ticklake.api.cache import LocalCache, cache_key, pack, unpack
from ticklake.api.limits import LocalBuckets
from ticklake.products.tenants import ApiAccess, Tenant


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _tenant(name: str, rate: float, burst: int = 0) -> Tenant:
    return Tenant(name, {}, ("US",), api=ApiAccess("0" * 64, rate, burst))


def test_a_bucket_allows_its_burst_then_its_rate_and_says_when_to_retry():
    clock = Clock()
    buckets = LocalBuckets(clock)
    slow, other = _tenant("slow", 0.5, burst=2), _tenant("other", 10)
    assert [buckets.take(slow).allowed for _ in range(3)] == [True, True, False]
    refused = buckets.take(slow)
    assert refused.retry_after == 2  # one token at 0.5/s: 2 s, in whole seconds
    assert all(buckets.take(other).allowed for _ in range(10))  # another tenant's bucket is its own
    clock.now += 2.0
    assert buckets.take(slow).allowed
    assert not buckets.take(slow).allowed
    clock.now += 0.1
    assert buckets.take(slow).retry_after == 2  # ceil(1.8 s): never 0


def test_the_cache_is_lru_within_its_entries_and_expires():
    clock = Clock()
    cache = LocalCache(2, 10, clock)

    async def run():
        await cache.set("a", b"1")
        await cache.set("b", b"2")
        assert await cache.get("a") == b"1"  # a is now the most recent
        await cache.set("c", b"3")
        assert await cache.get("b") is None
        assert await cache.get("a") == b"1"
        clock.now += 11
        assert await cache.get("a") is None

    asyncio.run(run())
    assert unpack(pack(42, b"body")) == (42, b"body")


def test_the_cache_key_holds_the_tenant_snapshot_statement_and_format():
    base = cache_key("risk", 7, "SELECT 1", ("US", "AAPL"), "json")
    assert base == cache_key("risk", 7, "SELECT 1", ("US", "AAPL"), "json")
    assert len({base, cache_key("research", 7, "SELECT 1", ("US", "AAPL"), "json"),
                cache_key("risk", 8, "SELECT 1", ("US", "AAPL"), "json"),
                cache_key("risk", 7, "SELECT 2", ("US", "AAPL"), "json"),
                cache_key("risk", 7, "SELECT 1", ("US", "MSFT"), "json"),
                cache_key("risk", 7, "SELECT 1", ("US", "AAPL"), "csv")}) == 6
    assert base.startswith("risk:7:")


@pytest.mark.parametrize("text", ["symbols: 'k3y-0123456789abcdef' is not", "k3y-0123456789abcdef",
                                  "prefix k3y-0123456789abcdef suffix"])
def test_the_presented_key_is_scrubbed_from_what_is_audited(text):
    call = Call("t" * 32, 0.0, "k3y-0123456789abcdef")
    assert "k3y-0123456789abcdef" not in call.scrub(text)
    assert "<key>" in call.scrub(text)
    long_key = "x" * 64
    quoted = Call("t" * 32, 0.0, long_key).scrub(f"symbols: {long_key[:40]!r}... is not")  # a refusal's quote
    assert "x" * 40 not in quoted
