"""Properties of the response cache's pure parts.

- The memory store's byte accounting is exact and bounded: after any sequence of puts, gets,
  deletes and passing time, its byte count is the sum of what it holds, never above
  `max_bytes`; an object over `max_object_size` is never held; what was just put (and fits) is
  there, and what is returned is exactly what was put under that key.
- Freshness follows RFC 9111 §4.2.1's order of precedence, checked against a reference written
  from the RFC's text: s-maxage, then max-age, then Expires - Date, then the heuristic.
- Cache-Control parsing does not depend on spacing, case of names or quoting of arguments.
- Entries survive their byte form (the Redis store's) unchanged.
"""

from __future__ import annotations

from email.utils import formatdate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.stdlib.cache.entry import Entry, VaryRecord, decode, encode
from a3s_gateway.stdlib.cache.freshness import freshness_lifetime, parse_cache_control
from a3s_gateway.stdlib.cache.store import MemoryStore

KEYS = [f"k{i}" for i in range(8)]
header_bytes = st.binary(min_size=1, max_size=12).map(lambda b: b.replace(b"\n", b"x"))
entries = st.builds(
    Entry,
    status=st.sampled_from([200, 203, 301, 404]),
    headers=st.lists(st.tuples(st.sampled_from([b"etag", b"x-a", b"vary"]), header_bytes), max_size=4).map(
        tuple
    ),
    chunks=st.lists(st.binary(max_size=300), max_size=4).map(tuple),
    response_time=st.floats(min_value=0, max_value=1e9),
    initial_age=st.floats(min_value=0, max_value=1e6),
    lifetime=st.floats(min_value=0, max_value=1e6),
    must_revalidate=st.booleans(),
    shared_auth=st.booleans(),
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from(KEYS), entries, st.integers(-1, 100).map(float)),
        st.tuples(st.just("get"), st.sampled_from(KEYS)),
        st.tuples(st.just("delete"), st.sampled_from(KEYS)),
        st.tuples(st.just("wait"), st.floats(min_value=0, max_value=50)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(operations, st.integers(min_value=200, max_value=3000), st.integers(min_value=100, max_value=1500))
def test_memory_store_bytes_are_exact_and_bounded(ops: list[tuple], max_bytes: int, max_object: int) -> None:
    store = MemoryStore(max_bytes, min(max_object, max_bytes))
    now = 0.0
    model: dict[str, Entry] = {}  # what each key last held, if it may still be there
    for op in ops:
        if op[0] == "put":
            _, key, entry, ttl = op
            store.put_now(key, entry, now, ttl)
            fits = entry.size + len(key) <= store.max_object_size and ttl > 0
            assert (store.get_now(key, now) is entry) == fits
            model.pop(key, None)
            if fits:
                model[key] = entry
        elif op[0] == "get":
            got = store.get_now(op[1], now)
            assert got is None or got is model.get(op[1])
        elif op[0] == "delete":
            store.delete_now(op[1])
            model.pop(op[1], None)
            assert store.get_now(op[1], now) is None
        else:
            now += op[1]
        held = {key: store._items[key] for key in store._items}
        assert store.bytes == sum(size for _, _, size in held.values()) <= max_bytes
        assert all(size <= store.max_object_size for _, _, size in held.values())
        assert all(value.size + len(key) == size for key, (value, _, size) in held.items())


# A reference for §4.2.1, written from the RFC's text rather than from the implementation.
def reference_lifetime(
    status: int,
    cc: dict[str, str | None],
    date: float,
    expires: float | None,
    modified: float | None,
    cap: float,
) -> float:
    if (
        "s-maxage" in cc
    ):  # "If the cache is shared and the s-maxage response directive is present, use its value"
        return float(int(cc["s-maxage"] or 0))
    if "max-age" in cc:  # "If the max-age response directive is present, use its value"
        return float(int(cc["max-age"] or 0))
    if expires is not None:  # "If the Expires response header field is present, use its value minus Date"
        return max(0.0, expires - date)
    if (
        status in {200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501} or "public" in cc
    ) and modified:
        return min(cap, (date - modified) / 10)  # §4.2.2: "10% of the interval since [Last-Modified]"
    return 0.0


@settings(max_examples=500, deadline=None)
@given(
    status=st.sampled_from([200, 203, 302, 404, 500]),
    s_maxage=st.none() | st.integers(0, 10**6),
    max_age=st.none() | st.integers(0, 10**6),
    public=st.booleans(),
    expires_in=st.none() | st.integers(-(10**5), 10**6),
    modified_ago=st.none() | st.integers(1, 10**7),
    cap=st.integers(1, 10**6),
)
def test_freshness_follows_the_rfc_precedence(
    status: int,
    s_maxage: int | None,
    max_age: int | None,
    public: bool,
    expires_in: int | None,
    modified_ago: int | None,
    cap: int,
) -> None:
    date = 1_700_000_000.0
    parts = [f"s-maxage={s_maxage}"] * (s_maxage is not None) + [f"max-age={max_age}"] * (max_age is not None)
    cc = parse_cache_control(", ".join(parts + ["public"] * public))
    expires = None if expires_in is None else date + expires_in
    modified = None if modified_ago is None else date - modified_ago
    got = freshness_lifetime(
        status,
        cc,
        date=date,
        expires=None if expires is None else formatdate(expires, usegmt=True),
        last_modified=modified,
        response_time=date + 5,
        heuristic_max=cap,
    )
    assert got == pytest.approx(reference_lifetime(status, cc, date, expires, modified, cap))


directive_names = st.sampled_from(
    ["max-age", "s-maxage", "no-cache", "private", "public", "max-stale", "x-ext"]
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(directive_names, st.none() | st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True), max_size=5),
    st.data(),
)
def test_cache_control_parsing_ignores_spacing_case_and_quoting(
    directives: dict[str, str | None], data: st.DataObject
) -> None:
    items = []
    for name, arg in directives.items():
        spelled = data.draw(st.sampled_from([name, name.upper(), name.title()]))
        if arg is not None:
            quoted = data.draw(st.booleans())
            spelled += "=" + (f'"{arg}"' if quoted else arg)
        items.append(spelled)
    separator = data.draw(st.sampled_from([",", ", ", " ,  "]))
    assert parse_cache_control(separator.join(items)) == directives


@settings(max_examples=200, deadline=None)
@given(entries, st.lists(st.text(max_size=8), max_size=3), st.text(max_size=16))
def test_stored_values_survive_their_byte_form(entry: Entry, names: list[str], token: str) -> None:
    assert decode(encode(entry)) == entry
    record = VaryRecord(tuple(names), token)
    assert decode(encode(record)) == record
