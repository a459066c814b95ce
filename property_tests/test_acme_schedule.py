"""When a certificate is ordered next (runtime/acme/schedule.py), on a fake clock: never a tight
loop after failures, never later than the cap allows, renewal at its time and not before."""

from __future__ import annotations

import datetime

from hypothesis import given
from hypothesis import strategies as st

from a3s_gateway.runtime.acme.schedule import CertState, backoff, next_attempt

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
seconds = st.floats(min_value=0.01, max_value=1e6, allow_nan=False)


@given(st.integers(min_value=1, max_value=200), seconds, seconds)
def test_backoff_doubles_from_initial_up_to_the_cap(failures: int, initial: float, cap: float) -> None:
    wait = backoff(failures, initial, cap)
    assert wait == min(cap, initial * 2.0 ** (failures - 1))
    assert wait >= min(initial, cap)  # never a tight loop
    assert backoff(failures + 1, initial, cap) >= wait


@given(st.integers(min_value=1, max_value=60), seconds, seconds, st.floats(min_value=0, max_value=1e7))
def test_a_failing_certificate_waits_its_backoff(
    failures: int, initial: float, cap: float, ago: float
) -> None:
    failed_at = T0 - datetime.timedelta(seconds=ago)
    state = CertState(("a.test",), failures=failures, last_failure=failed_at)
    when = next_attempt(state, T0, initial, cap)
    # Not before the backoff is over; at once (now) when it is.
    assert when == max(T0, failed_at + datetime.timedelta(seconds=backoff(failures, initial, cap)))


@given(st.floats(min_value=-1e6, max_value=1e6))
def test_a_valid_certificate_waits_for_its_renewal_time(offset: float) -> None:
    renew = T0 + datetime.timedelta(seconds=offset)
    state = CertState(("a.test",), not_after=T0 + datetime.timedelta(days=30), renew_at=renew)
    assert next_attempt(state, T0, 60, 3600) == renew
    assert next_attempt(CertState(("a.test",)), T0, 60, 3600) == T0  # missing: at once
