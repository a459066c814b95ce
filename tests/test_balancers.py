"""The load-balancing strategies, each built through the registry on a manual clock."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import DEFAULT_LATENCY_DECAY, LATENCY_WINDOW, Backend
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.stdlib import registry
from a3s_gateway.stdlib.balancers._base import BalancerKind, two_choices
from a3s_gateway.stdlib.balancers.ewma import decayed_latency
from a3s_gateway.stdlib.base import BuildContext

STRATEGIES = (
    "round-robin",
    "weighted",
    "least-connections",
    "random",
    "p2c",
    "ewma",
    "conversation-affinity",
    "prefix-cache",
)


def build(
    name: str, *, seed: int = 0, clock: ManualClock | None = None, state: Any = None, **options: Any
) -> Any:
    kind = registry.lookup("balancer", name)
    assert kind is not None, name
    config = kind.config.model_validate(options)
    ctx = BuildContext(node_id="service:s", name="s", clock=clock or ManualClock())
    if state is None:
        state = kind.impl.new_state(config, ctx)
    balancer = kind.impl(config, state, ctx, rng=random.Random(seed))
    assert isinstance(balancer, BalancerKind)
    return balancer


def pool(*weights: int) -> list[Backend]:
    return [Backend(url=f"http://10.0.0.{i}:80", weight=w) for i, w in enumerate(weights, start=1)]


def names(picks: list[Backend | None], backends: list[Backend]) -> str:
    letters = {b.key: chr(ord("a") + i) for i, b in enumerate(backends)}
    return "".join(letters[p.key] if p else "-" for p in picks)


# --------------------------------------------------------------------------- registry


def test_every_strategy_is_registered_with_a_docstring_and_a_strict_config() -> None:
    for name in STRATEGIES:
        kind = registry.lookup("balancer", name)
        assert kind is not None and kind.doc, name
        with pytest.raises(ValidationError):
            kind.config.model_validate({"no_such_option": 1})


@pytest.mark.parametrize("name", STRATEGIES)
def test_no_available_backend_gives_none(name: str) -> None:
    balancer = build(name)
    assert balancer.pick([], None) is None
    backends = pool(1, 1)
    backends[0].healthy = False
    backends[1].draining = True
    assert balancer.pick(backends, None) is None


@pytest.mark.parametrize("name", STRATEGIES)
def test_only_available_backends_are_picked(name: str) -> None:
    backends = pool(1, 1, 1, 1)
    backends[0].healthy = False
    backends[2].draining = True
    balancer = build(name)
    picked = {balancer.pick(backends, None).key for _ in range(200)}
    assert picked == {backends[1].key, backends[3].key}


# --------------------------------------------------------------------------- round-robin


def test_round_robin_cycles_in_order() -> None:
    backends = pool(1, 1, 1)
    balancer = build("round-robin")
    assert names([balancer.pick(backends, None) for _ in range(7)], backends) == "abcabca"


def test_round_robin_cursor_survives_a_rebuild() -> None:
    backends = pool(1, 1, 1)
    first = build("round-robin")
    first.pick(backends, None)
    rebuilt = build("round-robin", state=first.state)
    assert names([rebuilt.pick(backends, None)], backends) == "b"


# --------------------------------------------------------------------------- weighted


def test_weighted_matches_nginx_smooth_sequence() -> None:
    # The example in nginx's ngx_http_upstream_round_robin.c commit message: 5, 1, 1.
    backends = pool(5, 1, 1)
    balancer = build("weighted")
    assert names([balancer.pick(backends, None) for _ in range(14)], backends) == "aabacaa" * 2


def test_weighted_ignores_weight_zero_and_gives_none_when_all_zero() -> None:
    backends = pool(0, 2, 1)
    balancer = build("weighted")
    assert names([balancer.pick(backends, None) for _ in range(6)], backends) == "bcbbcb"
    assert build("weighted").pick(pool(0, 0), None) is None


def test_weighted_spreads_a_heavy_backend_between_light_ones() -> None:
    backends = pool(3, 1)
    balancer = build("weighted")
    assert names([balancer.pick(backends, None) for _ in range(8)], backends) == "aabaaaba"


def test_weighted_forgets_backends_removed_long_ago() -> None:
    balancer = build("weighted")
    for i in range(50):
        balancer.pick([Backend(url=f"http://old-{i}")], None)
    balancer.pick(pool(1), None)
    assert len(balancer.state) <= 2 * 1 + 8 + 1


# --------------------------------------------------------------------------- least-connections


def test_least_connections_picks_the_least_loaded() -> None:
    backends = pool(1, 1, 1)
    backends[0].in_flight, backends[1].in_flight, backends[2].in_flight = 4, 1, 2
    assert build("least-connections").pick(backends, None) is backends[1]


def test_least_connections_rotates_among_ties() -> None:
    backends = pool(1, 1, 1)
    backends[1].in_flight = 3
    balancer = build("least-connections")
    assert names([balancer.pick(backends, None) for _ in range(4)], backends) == "acac"


def test_least_connections_spreads_when_picks_are_counted() -> None:
    backends = pool(1, 1, 1)
    balancer = build("least-connections")
    for _ in range(9):
        balancer.pick(backends, None).in_flight += 1
    assert [b.in_flight for b in backends] == [3, 3, 3]


# --------------------------------------------------------------------------- random


def test_random_is_deterministic_under_a_seed() -> None:
    backends = pool(1, 1, 1)
    one, two = build("random", seed=7), build("random", seed=7)
    first = [one.pick(backends, None) for _ in range(50)]
    assert first == [two.pick(backends, None) for _ in range(50)]
    assert len(set(b.key for b in first)) == 3


def test_random_weighted_never_picks_weight_zero_and_prefers_heavy() -> None:
    backends = pool(0, 9, 1)
    balancer = build("random", weighted=True)
    counts = Counter(balancer.pick(backends, None).key for _ in range(1000))
    assert backends[0].key not in counts
    assert counts[backends[1].key] > 5 * counts[backends[2].key]
    assert build("random", weighted=True).pick(pool(0, 0), None) is None


def test_random_uniform_ignores_weights() -> None:
    backends = pool(100, 1)
    balancer = build("random")
    counts = Counter(balancer.pick(backends, None).key for _ in range(1000))
    assert 400 < counts[backends[1].key] < 600


# --------------------------------------------------------------------------- p2c


def test_p2c_never_picks_the_most_loaded_of_several() -> None:
    backends = pool(1, 1, 1)
    backends[0].in_flight, backends[1].in_flight, backends[2].in_flight = 0, 5, 9
    balancer = build("p2c")
    picked = Counter(balancer.pick(backends, None).key for _ in range(300))
    assert backends[2].key not in picked
    assert picked[backends[0].key] > picked[backends[1].key]


def test_p2c_with_one_candidate_picks_it() -> None:
    backends = pool(1)
    assert build("p2c").pick(backends, None) is backends[0]


def test_two_choices_draws_distinct_backends() -> None:
    backends = pool(1, 1)
    backends[0].in_flight = 1
    rng = random.Random(3)
    assert all(two_choices(rng, backends, lambda b: b.in_flight) is backends[1] for _ in range(50))


# --------------------------------------------------------------------------- ewma


def test_ewma_peak_sensitivity_and_smoothing() -> None:
    backend = Backend(url="http://a")
    backend.observe_latency(0.1, now=100.0, decay=10.0)
    assert backend.latency_ewma == pytest.approx(0.1)
    backend.observe_latency(2.0, now=100.5, decay=10.0)  # slower: taken at once (peak)
    assert backend.latency_ewma == pytest.approx(2.0)
    backend.observe_latency(0.1, now=110.5, decay=10.0)  # faster: blended, old weight 1/e
    expected = 2.0 / 2.718281828 + 0.1 * (1 - 1 / 2.718281828)
    assert backend.latency_ewma == pytest.approx(expected, rel=1e-6)


def test_ewma_decays_while_idle() -> None:
    backend = Backend(url="http://a")
    assert decayed_latency(backend, 0.0, 10.0) is None
    backend.observe_latency(1.0, now=100.0, decay=10.0)
    assert decayed_latency(backend, 100.0, 10.0) == pytest.approx(1.0)
    assert decayed_latency(backend, 120.0, 10.0) == pytest.approx(1.0 / 2.718281828**2, rel=1e-6)


def test_ewma_prefers_the_fast_backend() -> None:
    clock = ManualClock()
    backends = pool(1, 1)
    balancer = build("ewma", clock=clock)
    observe(balancer, backends[0], 1.0, clock.now())
    observe(balancer, backends[1], 0.05, clock.now())
    assert all(balancer.pick(backends, None) is backends[1] for _ in range(20))


def test_ewma_weighs_in_flight_requests() -> None:
    clock = ManualClock()
    backends = pool(1, 1)
    balancer = build("ewma", clock=clock)
    observe(balancer, backends[0], 0.1, clock.now())
    observe(balancer, backends[1], 0.2, clock.now())
    backends[0].in_flight = 3  # cost 0.4 against 0.2
    assert balancer.pick(backends, None) is backends[1]


def test_ewma_retries_a_slow_backend_once_its_average_decays() -> None:
    clock = ManualClock()
    backends = pool(1, 1)
    balancer = build("ewma", clock=clock, decay="1s")
    observe(balancer, backends[0], 5.0, clock.now())
    observe(balancer, backends[1], 0.5, clock.now())
    assert balancer.pick(backends, None) is backends[1]
    clock.advance(3.0)
    observe(balancer, backends[1], 0.5, clock.now())  # the fast one keeps answering
    assert balancer.pick(backends, None) is backends[0]  # 5 * e^-3 ~ 0.25 < 0.5


def test_ewma_gives_a_new_backend_a_neutral_prior() -> None:
    clock = ManualClock()
    backends = pool(1, 1, 1)
    balancer = build("ewma", clock=clock)
    observe(balancer, backends[0], 0.1, clock.now())
    observe(balancer, backends[1], 0.3, clock.now())
    # The newcomer is costed at the mean (0.2): it beats the slow one and loses to the fast one.
    picks = Counter(balancer.pick(backends, None).key for _ in range(300))
    assert picks[backends[2].key] > 0
    assert picks[backends[0].key] > picks[backends[2].key] > picks[backends[1].key]


def test_ewma_with_no_observations_balances_on_in_flight() -> None:
    backends = pool(1, 1)
    backends[0].in_flight = 2
    assert build("ewma").pick(backends, None) is backends[1]


def observe(balancer: Any, backend: Backend, latency: float, now: float) -> None:
    """What the service does after each exchange, with the decay the balancer chose."""
    backend.observe_latency(latency, now, balancer.latency_decay)


def test_every_strategy_gets_the_default_decay_and_ewma_its_own() -> None:
    assert build("round-robin").latency_decay == DEFAULT_LATENCY_DECAY
    assert build("ewma", decay="2s").latency_decay == 2.0


# --------------------------------------------------------------------------- latency window


def test_the_latency_window_gives_nearest_rank_quantiles() -> None:
    backend = Backend(url="http://a")
    assert backend.latency_quantiles(0.5, 0.99) is None
    for i in range(1, 101):  # 100 ms down to 1 ms: the order they came in does not matter
        backend.observe_latency((101 - i) / 1000, now=float(i), decay=10.0)
    assert backend.exchanges == 100
    assert backend.latency_quantiles(0.5, 0.99) == pytest.approx([0.050, 0.099])
    assert backend.latency_quantiles(1.0) == pytest.approx([0.100])


def test_the_latency_window_keeps_only_the_last_exchanges() -> None:
    backend = Backend(url="http://a")
    for i in range(LATENCY_WINDOW):
        backend.observe_latency(5.0, now=float(i + 1), decay=10.0)
    for i in range(LATENCY_WINDOW):  # a full window of fast answers replaces every slow one
        backend.observe_latency(0.001, now=float(LATENCY_WINDOW + i + 1), decay=10.0)
    assert backend.exchanges == 2 * LATENCY_WINDOW
    assert backend.latency_quantiles(0.5, 0.99) == pytest.approx([0.001, 0.001])
    assert len(backend.latency_ring) == LATENCY_WINDOW
