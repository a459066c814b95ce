"""Properties of the load-balancing strategies, sticky sessions and the mirroring tee.

Randomised strategies run on a seeded `random.Random`, and the one statistical property (random
converges to its distribution) runs derandomized with a bound many standard deviations wide, so
no property here can flake.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from a3s_gateway.compiler.schema import StickyConfig
from a3s_gateway.runtime.api import Backend, Headers, Request
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.stdlib import registry
from a3s_gateway.stdlib.balancers._base import candidates
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.services.mirror import ShadowAbandoned, tee
from a3s_gateway.stdlib.services.sticky import StickySessions

STRATEGIES = ("round-robin", "weighted", "least-connections", "random", "p2c", "ewma")
# Strategies for which a weight of 0 means "no traffic".
WEIGHT_AWARE = {"weighted", "random-weighted"}


def build(name: str, *, seed: int = 0, clock: ManualClock | None = None, **options: Any) -> Any:
    kind = registry.lookup("balancer", name)
    assert kind is not None
    config = kind.config.model_validate(options)
    ctx = BuildContext(node_id="service:s", name="s", clock=clock or ManualClock())
    return kind.impl(config, kind.impl.new_state(config, ctx), ctx, rng=random.Random(seed))


def pool(weights: Sequence[int]) -> list[Backend]:
    return [Backend(url=f"http://b{i}", weight=w) for i, w in enumerate(weights)]


# --------------------------------------------------------------------------- smooth weighted round robin


@settings(deadline=None)  # timings vary on a loaded CI machine; nothing here is timed
@given(
    st.lists(st.integers(0, 12), min_size=1, max_size=8).filter(lambda ws: sum(ws) > 0),
    st.integers(1, 4),
)
def test_smooth_wrr_gives_exact_shares_in_every_window(weights: list[int], periods: int) -> None:
    backends = pool(weights)
    balancer = build("weighted")
    total = sum(weights)
    picks = [balancer.pick(backends, None).key for _ in range(total * (periods + 1))]
    expected = {b.key: b.weight for b in backends if b.weight}
    for start in range(len(picks) - total + 1):
        assert Counter(picks[start : start + total]) == expected


# --------------------------------------------------------------------------- least-connections


@settings(deadline=None)  # timings vary on a loaded CI machine; nothing here is timed
@given(st.data())
def test_least_connections_never_picks_a_busier_backend(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 6))
    backends = pool([1] * n)
    for backend in backends:
        backend.in_flight = data.draw(st.integers(0, 5))
        backend.healthy = data.draw(st.booleans())
        backend.draining = data.draw(st.booleans())
    balancer = build("least-connections")
    for _ in range(data.draw(st.integers(1, 30))):
        chosen = balancer.pick(backends, None)
        available = [b for b in backends if b.available]
        if not available:
            assert chosen is None
            return
        assert chosen is not None and chosen.available
        assert chosen.in_flight <= min(b.in_flight for b in available)
        # The picked request starts; some other request may finish.
        chosen.in_flight += 1
        done = data.draw(st.sampled_from(backends))
        done.in_flight = max(0, done.in_flight - data.draw(st.integers(0, 1)))


# --------------------------------------------------------------------------- no unavailable pick, ever

backend_states = st.lists(
    st.tuples(st.integers(0, 5), st.booleans(), st.booleans(), st.integers(0, 8), st.floats(0, 2)),
    min_size=0,
    max_size=7,
)


@settings(deadline=None)  # timings vary on a loaded CI machine; nothing here is timed
@given(
    st.sampled_from([*STRATEGIES, "random-weighted"]),
    st.integers(0, 2**32),
    st.lists(st.tuples(backend_states, st.floats(0, 30)), min_size=1, max_size=8),
)
def test_no_strategy_ever_picks_an_unavailable_backend(name: str, seed: int, rounds: list[Any]) -> None:
    clock = ManualClock()
    balancer = (
        build("random", seed=seed, weighted=True)
        if name == "random-weighted"
        else build(name, seed=seed, clock=clock)
    )
    for states, advance in rounds:
        clock.advance(advance)
        backends = []
        for i, (weight, healthy, draining, in_flight, latency) in enumerate(states):
            backend = Backend(url=f"http://b{i}", weight=weight, healthy=healthy, draining=draining)
            backend.in_flight = in_flight
            backend.observe_latency(latency, clock.now(), balancer.latency_decay)
            backends.append(backend)
        # `candidates` spells out `Backend.available`: the two must not drift apart.
        assert candidates(backends) == [b for b in backends if b.available]
        eligible = [b for b in backends if b.available and (name not in WEIGHT_AWARE or b.weight > 0)]
        for _ in range(5):
            chosen = balancer.pick(backends, None)
            if eligible:
                assert chosen is not None and chosen in eligible
            else:
                assert chosen is None


# --------------------------------------------------------------------------- random converges


@settings(derandomize=True, max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 10), min_size=2, max_size=6), st.booleans())
def test_random_converges_to_its_distribution(weights: list[int], weighted: bool) -> None:
    backends = pool(weights)
    balancer = build("random", seed=12345, weighted=weighted)
    draws = 6000
    counts = Counter(balancer.pick(backends, None).key for _ in range(draws))
    total = sum(weights)
    chi2 = 0.0
    for backend in backends:
        expected = draws * (backend.weight / total if weighted else 1 / len(backends))
        chi2 += (counts[backend.key] - expected) ** 2 / expected
    df = len(backends) - 1
    # Mean df, variance 2*df: 20 standard deviations is far beyond any plausible deviation.
    assert chi2 < df + 20 * math.sqrt(2 * df)


# --------------------------------------------------------------------------- sticky sessions


def cookie_request(value: str | None) -> Request:
    return Request("GET", "/", Headers.from_pairs([("cookie", f"a3s_sticky={value}")] if value else []))


@settings(deadline=None)  # timings vary on a loaded CI machine; nothing here is timed
@given(
    st.sampled_from(STRATEGIES),
    st.integers(2, 6),
    st.lists(st.tuples(st.integers(0, 5), st.booleans(), st.booleans()), max_size=30),
    st.integers(0, 1000),
)
def test_a_sticky_cookie_keeps_its_backend_while_it_is_available(
    name: str, n: int, toggles: list[tuple[int, bool, bool]], seed: int
) -> None:
    backends = pool([1] * n)
    balancer = build(name, seed=seed)
    sticky = StickySessions(StickyConfig(), "svc")
    first = sticky.choose(cookie_request(None), backends, balancer.pick)
    assert first is not None and first.set_cookie is not None
    value = first.set_cookie.split(";")[0].split("=", 1)[1]
    pinned = first.backend
    for index, healthy, draining in toggles:
        target = backends[index % n]
        if target is not pinned:
            target.healthy, target.draining = healthy, draining
        again = sticky.choose(cookie_request(value), backends, balancer.pick)
        assert again is not None and again.backend is pinned and again.set_cookie is None


@settings(deadline=None)  # timings vary on a loaded CI machine; nothing here is timed
@given(st.integers(2, 6), st.integers(0, 1000))
def test_a_dead_pin_moves_to_an_available_backend_and_stays(n: int, seed: int) -> None:
    backends = pool([1] * n)
    balancer = build("round-robin", seed=seed)
    sticky = StickySessions(StickyConfig(), "svc")
    first = sticky.choose(cookie_request(None), backends, balancer.pick)
    assert first is not None and first.set_cookie is not None
    value = first.set_cookie.split(";")[0].split("=", 1)[1]
    first.backend.healthy = False
    moved = sticky.choose(cookie_request(value), backends, balancer.pick)
    assert moved is not None and moved.backend.available and moved.backend is not first.backend
    for _ in range(5):
        again = sticky.choose(cookie_request(value), backends, balancer.pick)
        assert again is not None and again.backend is moved.backend


# --------------------------------------------------------------------------- mirroring tee


async def _source(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        await anyio.sleep(0)
        yield part


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(st.binary(max_size=64), max_size=20),
    st.integers(0, 512),
    st.sampled_from(["read", "ignore", "close-early", "slow"]),
)
def test_mirroring_never_changes_the_primary_body(
    parts: list[bytes], max_body: int, shadow_mode: str
) -> None:
    async def main() -> None:
        primary, shadow = tee(_source(parts), max_body)
        shadow_got: list[bytes] = []
        shadow_outcome: list[str] = []

        async def read_shadow() -> None:
            try:
                async for chunk in shadow:
                    shadow_got.append(chunk)
                    if shadow_mode == "close-early":
                        break
                    if shadow_mode == "slow":
                        for _ in range(3):
                            await anyio.sleep(0)
                shadow_outcome.append("done")
            except ShadowAbandoned:
                shadow_outcome.append("abandoned")
            finally:
                await shadow.aclose()

        async with anyio.create_task_group() as tg:
            if shadow_mode != "ignore":
                tg.start_soon(read_shadow)
            assert b"".join([chunk async for chunk in primary]) == b"".join(parts)
        body = b"".join(parts)
        if shadow_mode in ("read", "slow"):
            # The shadow got the whole body, or a prefix of it and then an explicit abandonment.
            assert b"".join(shadow_got) == body or (
                shadow_outcome == ["abandoned"] and body.startswith(b"".join(shadow_got))
            )
            assert (shadow_outcome == ["done"]) == (len(body) <= max_body)

    anyio.run(main)
