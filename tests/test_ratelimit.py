"""Rate limiting: the limiter's arithmetic on a test clock, who counts as the client, and the
429 problems and RateLimit headers through the real app."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service.api.ratelimit import MAX_CLIENTS, RateLimiter, client_key, parse_networks
from service.app import create_app
from service.config import ConfigError, Settings, load_settings
from tests.test_limits import assert_problem, running

Client = AsyncTestClient[Litestar]
PAPER = "/v1/papers/densing-law-of-llms"
# draft-ietf-httpapi-ratelimit-headers-11: Lists of String items with Integer parameters.
POLICY = re.compile(r'^"burst";q=(\d+);w=(\d+), "quota";q=(\d+);w=(\d+)$')
LIMIT = re.compile(r'^"burst";r=(\d+);t=(\d+), "quota";r=(\d+);t=(\d+)$')


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(burst: int, per_s: float, quota: int, window_s: int, **kw: Any) -> RateLimiter:
    return RateLimiter(burst, per_s, quota, window_s, **kw)


# --- the limiter ------------------------------------------------------------------------------


def test_a_burst_passes_then_the_bucket_refills_at_the_rate() -> None:
    clock = Clock()
    limits = limiter(3, 2.0, 1000, 3600, clock=clock)
    decisions = [limits.hit("a") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.burst_remaining for d in decisions[:3]] == [2, 1, 0]
    refused = decisions[3]
    assert refused.code == "rate-limit-burst"
    assert refused.retry_after_s == 1  # one token comes back in 0.5 s
    assert refused.quota_remaining == 997  # a refused request uses no quota
    clock.now += 0.5
    assert limits.hit("a").allowed
    assert not limits.hit("a").allowed
    clock.now += 10  # far longer than a refill: the bucket holds `burst`, no more
    assert [limits.hit("a").allowed for _ in range(4)] == [True, True, True, False]


def test_each_client_has_its_own_bucket() -> None:
    limits = limiter(1, 1.0, 1000, 3600, clock=Clock())
    assert limits.hit("a").allowed
    assert not limits.hit("a").allowed
    assert limits.hit("b").allowed


def test_the_quota_holds_for_its_window_then_starts_again() -> None:
    clock = Clock()
    limits = limiter(100, 100.0, 3, 60, clock=clock)
    assert all(limits.hit("a").allowed for _ in range(3))
    refused = limits.hit("a")
    assert (refused.allowed, refused.code) == (False, "rate-limit-quota")
    assert (refused.quota_remaining, refused.retry_after_s, refused.quota_reset_s) == (0, 60, 60)
    clock.now += 59.5
    assert limits.hit("a").retry_after_s == 1
    clock.now += 0.5
    fresh = limits.hit("a")
    assert (fresh.allowed, fresh.quota_remaining, fresh.quota_reset_s) == (True, 2, 60)


def test_remaining_and_reset_follow_the_draft() -> None:
    clock = Clock()
    limits = limiter(4, 2.0, 10, 60, clock=clock)
    first = limits.hit("a")
    assert limits.policy_header == '"burst";q=4;w=2, "quota";q=10;w=60'
    # r=3 left; t: a full bucket again in 0.5 s (ceil 1); the window ends in 60 s.
    assert limits.headers(first)["RateLimit"] == '"burst";r=3;t=1, "quota";r=9;t=60'
    for _ in range(3):
        last = limits.hit("a")
    # r=0: t is when a request passes again, as Retry-After says once one is refused.
    assert limits.headers(last)["RateLimit"] == '"burst";r=0;t=1, "quota";r=6;t=60'


def test_idle_clients_are_forgotten_and_memory_is_bounded() -> None:
    clock = Clock()
    limits = limiter(2, 1.0, 100, 10, clock=clock, max_clients=50)
    for n in range(500):
        limits.hit(f"client-{n}")
        assert len(limits) <= 50
    clock.now += 10  # every bucket full and every window over: all are like new clients
    limits.hit("late")
    assert len(limits) == 1
    assert MAX_CLIENTS >= 10_000


def test_a_forgotten_client_is_no_better_off() -> None:
    clock = Clock()
    limits = limiter(2, 1.0, 3, 10, clock=clock)
    assert [limits.hit("a").allowed for _ in range(3)] == [True, True, False]
    clock.now += 2  # the bucket is full again but the window is not over: remembered
    limits.hit("other")
    assert [limits.hit("a").allowed for _ in range(2)] == [True, False]  # quota 3 used up


# --- who the client is ------------------------------------------------------------------------


def scope(peer: str, *forwarded: str) -> Any:
    return {
        "type": "http",
        "client": (peer, 5000),
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
    }


PROXIES = parse_networks(["10.0.0.0/8", "192.0.2.7"])


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert client_key(scope("203.0.113.9", "198.51.100.1"), PROXIES) == "203.0.113.9"
    assert client_key(scope("203.0.113.9", "198.51.100.1"), ()) == "203.0.113.9"


def test_behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() -> None:
    # The client forged the first entry; our proxies appended the rest.
    forwarded = "6.6.6.6, 198.51.100.1, 10.1.2.3"
    assert client_key(scope("192.0.2.7", forwarded), PROXIES) == "198.51.100.1"
    # The same list split over several header lines.
    assert client_key(scope("10.9.9.9", "6.6.6.6", "198.51.100.1"), PROXIES) == "198.51.100.1"
    # Only trusted hops: the farthest one is the client.
    assert client_key(scope("10.9.9.9", "10.0.0.1, 10.0.0.2"), PROXIES) == "10.0.0.1"
    # No header: the proxy itself.
    assert client_key(scope("10.9.9.9"), PROXIES) == "10.9.9.9"


def test_a_malformed_hop_stops_the_walk() -> None:
    assert client_key(scope("10.9.9.9", "198.51.100.1, nonsense, 10.0.0.2"), PROXIES) == "10.0.0.2"


def test_forwarded_addresses_with_ports_and_ipv6() -> None:
    assert client_key(scope("10.9.9.9", "198.51.100.1:4711"), PROXIES) == "198.51.100.1"
    assert client_key(scope("10.9.9.9", "[2001:db8::1]:4711"), PROXIES) == "2001:db8::/64"


def test_ipv6_clients_count_per_64_block() -> None:
    one = client_key(scope("2001:db8:1:2::1"), ())
    assert one == client_key(scope("2001:db8:1:2:ffff::9"), ()) == "2001:db8:1:2::/64"
    assert one != client_key(scope("2001:db8:1:3::1"), ())
    assert client_key(scope("::ffff:198.51.100.1"), ()) == "198.51.100.1"


def test_a_peer_that_is_not_an_address_is_its_own_key() -> None:
    assert client_key(scope("testclient", "198.51.100.1"), PROXIES) == "testclient"


# --- through the app --------------------------------------------------------------------------


def app_with(url: str, **overrides: Any) -> Litestar:
    return create_app(
        Settings(**{"database_url": url, "pool_min_size": 0, "pool_max_size": 4, **overrides})
    )


async def test_over_the_burst_is_a_429_naming_the_burst_limit(seeded_db: str) -> None:
    app = app_with(seeded_db, rate_limit_burst=3, rate_limit_per_s=0.1)
    async with AsyncTestClient(app) as client:
        passed = [await client.get(PAPER) for _ in range(3)]
        refused = await client.get(PAPER, headers={"X-Request-ID": "too-fast"})
        other_route = await client.get("/v1/topics")
    for n, response in enumerate(passed):
        assert response.status_code == 200
        policy = POLICY.match(response.headers["ratelimit-policy"])
        limit = LIMIT.match(response.headers["ratelimit"])
        assert policy is not None
        assert limit is not None
        assert policy.groups() == ("3", "30", "100000", "3600")
        assert int(limit.group(1)) == 2 - n
    body = assert_problem(refused, 429, "rate-limit-burst")
    assert "burst limit" in body["detail"]
    assert refused.headers["retry-after"] == "10"  # one request per 10 s
    assert refused.headers["x-request-id"] == "too-fast"
    assert refused.headers["cache-control"] == "no-store"
    limit = LIMIT.match(refused.headers["ratelimit"])
    assert limit is not None
    assert limit.group(1) == "0"
    assert int(limit.group(2)) <= int(refused.headers["retry-after"])
    assert other_route.status_code == 429  # the limit is per client, not per route


async def test_over_the_quota_is_a_429_naming_the_quota(seeded_db: str) -> None:
    app = app_with(seeded_db, rate_limit_quota=2, rate_limit_window_s=600)
    async with AsyncTestClient(app) as client:
        assert [(await client.get("/v1/topics")).status_code for _ in range(2)] == [200, 200]
        refused = await client.get("/v1/topics")
        head = await client.head("/v1/topics")
    body = assert_problem(refused, 429, "rate-limit-quota")
    assert "quota" in body["detail"]
    assert 599 <= int(refused.headers["retry-after"]) <= 600
    assert (head.status_code, head.content) == (429, b"")


async def test_health_and_ready_are_not_limited(seeded_db: str) -> None:
    app = app_with(seeded_db, rate_limit_burst=1, rate_limit_per_s=0.01)
    async with AsyncTestClient(app) as client:
        for _ in range(5):
            for path in ("/health", "/ready"):
                response = await client.get(path)
                assert response.status_code == 200
                assert "ratelimit" not in response.headers
        assert (await client.get(PAPER)).status_code == 200
        assert (await client.get(PAPER)).status_code == 429


async def test_rate_limiting_can_be_turned_off(seeded_db: str) -> None:
    app = app_with(seeded_db, rate_limit_enabled=False, rate_limit_burst=1)
    async with AsyncTestClient(app) as client:
        responses = [await client.get(PAPER) for _ in range(5)]
    assert {r.status_code for r in responses} == {200}
    assert all("ratelimit" not in r.headers for r in responses)


async def test_clients_behind_a_trusted_proxy_are_limited_apart(seeded_db: str) -> None:
    # Over loopback the peer is 127.0.0.1: the proxy in front of the API.
    async with running(
        seeded_db, rate_limit_burst=2, rate_limit_per_s=0.01, trusted_proxies=("127.0.0.1",)
    ) as client:

        async def status(forwarded: str) -> int:
            response = await client.get(PAPER, headers={"X-Forwarded-For": forwarded})
            return response.status_code

        assert [await status("198.51.100.1") for _ in range(3)] == [200, 200, 429]
        assert [await status("198.51.100.2") for _ in range(3)] == [200, 200, 429]
        # A forged first entry does not buy a new allowance.
        assert await status("6.6.6.6, 198.51.100.1") == 429


async def test_an_untrusted_proxy_cannot_choose_the_client(seeded_db: str) -> None:
    async with running(seeded_db, rate_limit_burst=2, rate_limit_per_s=0.01) as client:
        statuses = [
            (await client.get(PAPER, headers={"X-Forwarded-For": f"198.51.100.{n}"})).status_code
            for n in range(3)
        ]
    assert statuses == [200, 200, 429]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PAPERS_RATE_LIMIT_ENABLED", "maybe"),
        ("PAPERS_RATE_LIMIT_BURST", "0"),
        ("PAPERS_RATE_LIMIT_PER_S", "-1"),
        ("PAPERS_RATE_LIMIT_QUOTA", "lots"),
        ("PAPERS_RATE_LIMIT_WINDOW_S", "0"),
        ("PAPERS_TRUSTED_PROXIES", "10.0.0.0/8, proxy.local"),
    ],
)
def test_a_bad_rate_limit_setting_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


def test_rate_limit_settings_are_read() -> None:
    loaded = load_settings(
        {
            "PAPERS_RATE_LIMIT_ENABLED": "false",
            "PAPERS_RATE_LIMIT_BURST": "10",
            "PAPERS_RATE_LIMIT_PER_S": "2.5",
            "PAPERS_RATE_LIMIT_QUOTA": "1000",
            "PAPERS_RATE_LIMIT_WINDOW_S": "86400",
            "PAPERS_TRUSTED_PROXIES": "10.1.2.3/8, 192.0.2.7, 2001:db8::/32",
        }
    )
    assert not loaded.rate_limit_enabled
    assert (loaded.rate_limit_burst, loaded.rate_limit_per_s) == (10, 2.5)
    assert (loaded.rate_limit_quota, loaded.rate_limit_window_s) == (1000, 86400)
    assert loaded.trusted_proxies == ("10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32")
    defaults = load_settings({})
    assert defaults.rate_limit_enabled
    assert defaults.trusted_proxies == ()
