"""Per-client rate limiting: a token bucket for bursts and a quota per window.

Two policies apply to each client, and a request must pass both:

- `burst`: a token bucket holding PAPERS_RATE_LIMIT_BURST requests, refilled at
  PAPERS_RATE_LIMIT_PER_S per second: short bursts pass, a sustained rate above it does not.
- `quota`: at most PAPERS_RATE_LIMIT_QUOTA requests per PAPERS_RATE_LIMIT_WINDOW_S seconds,
  the window starting at the client's first request after the previous one ended.

A refused request is a 429 problem whose `code` says which policy refused it
(`rate-limit-burst` or `rate-limit-quota`), with `Retry-After`; refused requests do not use
up quota. Every other answer carries the headers of draft-ietf-httpapi-ratelimit-headers-11
(structured fields; policy names are Strings):

    RateLimit-Policy: "burst";q=200;w=4, "quota";q=100000;w=3600
    RateLimit: "burst";r=199;t=1, "quota";r=99999;t=3600

`w` of the burst policy is the time an empty bucket takes to fill. `r` is what remains; `t`
is, when `r` is 0, the seconds until a request will pass again (what `Retry-After` says),
else the seconds until the policy is fully restored (a full bucket, a new window).

The client is the peer address, or, when the peer is one of PAPERS_TRUSTED_PROXIES, the
rightmost address in `X-Forwarded-For` that is not a trusted proxy (each proxy appends the
address it received the request from, so only the part written by trusted proxies is
believed). IPv6 clients are limited per /64, the block one subscriber usually holds.

State is in memory, per process: with N worker processes a client gets up to N times the
limits. At most `max_clients` clients are remembered; a client whose bucket is full and whose
window has ended is forgotten (it is the same as a new one), and past the bound the least
recently seen are dropped first.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Final

import msgspec
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service import metrics
from service.api.limits import send_problem

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NOT_LIMITED: Final = frozenset({"/health", "/ready"})
MAX_CLIENTS: Final = 100_000  # about 25 MB of state at most
IPV6_PREFIX: Final = 64


class Decision(msgspec.Struct, frozen=True):
    """The outcome of one request against both policies."""

    allowed: bool
    code: str | None  # when refused: rate-limit-burst or rate-limit-quota
    burst_remaining: int
    burst_reset_s: int
    quota_remaining: int
    quota_reset_s: int
    retry_after_s: int


class _Client:
    __slots__ = ("seen", "tokens", "used", "window_start")

    def __init__(self, now: float, burst: int) -> None:
        self.tokens = float(burst)
        self.seen = now
        self.window_start = now
        self.used = 0


def _ceil(seconds: float) -> int:
    return max(0, math.ceil(seconds - 1e-9))


class RateLimiter:
    """Token bucket plus windowed quota, per client key, in bounded memory."""

    def __init__(
        self,
        burst: int,
        per_s: float,
        quota: int,
        window_s: int,
        *,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.per_s = per_s
        self.quota = quota
        self.window_s = window_s
        self.max_clients = max_clients
        self._clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        # After this long unseen, a client's state equals a new client's: forget it.
        self._idle_after_s = max(window_s, burst / per_s)
        self.policy_header = (
            f'"burst";q={burst};w={max(1, _ceil(burst / per_s))}, "quota";q={quota};w={window_s}'
        )

    def __len__(self) -> int:
        return len(self._clients)

    def hit(self, key: str) -> Decision:
        """Count one request from `key`, or refuse it."""
        now = self._clock()
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = _Client(now, self.burst)
        else:
            self._clients.move_to_end(key)
            client.tokens = min(self.burst, client.tokens + (now - client.seen) * self.per_s)
            if now - client.window_start >= self.window_s:
                client.window_start, client.used = now, 0
        client.seen = now
        code: str | None = None
        if client.used >= self.quota:
            code = "rate-limit-quota"
        elif client.tokens < 1:
            code = "rate-limit-burst"
        else:
            client.tokens -= 1
            client.used += 1
        self._evict(now)
        return self._decision(client, now, code)

    def _decision(self, client: _Client, now: float, code: str | None) -> Decision:
        tokens = math.floor(client.tokens)
        burst_reset = (
            (1 - client.tokens) / self.per_s
            if tokens == 0
            else (self.burst - client.tokens) / self.per_s
        )
        quota_remaining = self.quota - client.used
        quota_reset = client.window_start + self.window_s - now
        if code == "rate-limit-quota":
            retry = quota_reset
        elif code == "rate-limit-burst":
            retry = burst_reset
        else:
            retry = 0.0
        return Decision(
            allowed=code is None,
            code=code,
            burst_remaining=tokens,
            burst_reset_s=_ceil(burst_reset),
            quota_remaining=quota_remaining,
            quota_reset_s=_ceil(quota_reset),
            retry_after_s=max(1, _ceil(retry)) if code else 0,
        )

    def _evict(self, now: float) -> None:
        clients = self._clients
        while clients:
            key, oldest = next(iter(clients.items()))
            if len(clients) <= self.max_clients and now - oldest.seen < self._idle_after_s:
                return
            del clients[key]

    def headers(self, decision: Decision) -> dict[str, str]:
        """The RateLimit-Policy and RateLimit fields for a decision."""
        return {
            "RateLimit-Policy": self.policy_header,
            "RateLimit": (
                f'"burst";r={decision.burst_remaining};t={decision.burst_reset_s}, '
                f'"quota";r={decision.quota_remaining};t={decision.quota_reset_s}'
            ),
        }


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """Trusted proxies (addresses or CIDR networks) as networks."""
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("["):  # [v6]:port
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _key(address: Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


def _trusted(address: Address | None, proxies: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_key(scope: Scope, proxies: tuple[Network, ...]) -> str:
    """Whom a request counts against: see the module docstring."""
    client = scope.get("client")
    peer_text = client[0] if client else ""
    peer = _address(peer_text)
    if peer is None:
        return peer_text or "unknown"
    if not _trusted(peer, proxies):
        return _key(peer)
    hops = [
        hop
        for name, value in scope["headers"]
        if name.lower() == b"x-forwarded-for"
        for hop in value.decode("latin-1").split(",")
    ]
    nearest = peer  # the closest hop known to be written by a trusted proxy
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:  # a trusted proxy would not write this: stop believing
            break
        if not _trusted(address, proxies):
            return _key(address)
        nearest = address
    return _key(nearest)


def rate_limit(app: ASGIApp, limiter: RateLimiter, proxies: tuple[Network, ...]) -> ASGIApp:
    """Refuse a client's request over its limits with a 429 problem; otherwise pass it on and
    add the RateLimit fields to the answer."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] in NOT_LIMITED:
            await app(scope, receive, send)
            return
        decision = limiter.hit(client_key(scope, proxies))
        headers = limiter.headers(decision)
        if decision.code is not None:
            metrics.REJECTED.labels(decision.code).inc()
            which = "burst limit" if decision.code == "rate-limit-burst" else "quota"
            await send_problem(
                scope,
                send,
                429,
                decision.code,
                f"too many requests: the {which} is used up; retry after "
                f"{decision.retry_after_s} second(s)",
                {**headers, "Retry-After": str(decision.retry_after_s)},
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableScopeHeaders.from_message(message)
                for name, value in headers.items():
                    response_headers[name] = value
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware
