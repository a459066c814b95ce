"""Properties of the privacy classifier (stdlib/privacy/).

- Checks: `luhn_ok` agrees with the textbook Luhn algorithm on any digits; every IBAN built with
  its mod-97 check digits passes `iban_ok`, and any single changed character fails it.
- Finding: a Luhn-valid number of 13 to 19 digits, written plain or grouped by spaces or dashes,
  anywhere in text, is found (as a card, or as a Chinese ID when it is also a valid one).
- Soundness: every finding's span matches its rule's own pattern and passes its check.
- The scan against a reference that tries every rule at every position, one anchored match at a
  time (no alternation, no groups, no iterator): the same findings, in the same order. It pins
  what the one-pass scan must find however it reads google-re2 (stdlib/privacy/scanner.py).
- Redaction: with every rule redacted, the output holds none of the matched spans and a second
  scan finds nothing: redaction never leaves (or makes) a match.
"""

from __future__ import annotations

import json
import string

import re2
from hypothesis import assume, example, given
from hypothesis import strategies as st

from a3s_gateway.stdlib.privacy import Classifier, Scanner
from a3s_gateway.stdlib.privacy.detectors import iban_ok, luhn_ok, national_id_ok
from a3s_gateway.stdlib.services.schemas.privacy_router import PrivacyRouterConfig

_RULES = PrivacyRouterConfig.model_validate(
    {
        "route": {"public": "x"},
        "rule": {"projects": {"level": "internal", "keywords": ["blue harbor", "机密"]}},
    }
).scan_rules()
_SCANNER = Scanner(_RULES)
_REDACTING = Classifier(_SCANNER, frozenset({"*"}))


def _textbook_luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value // 10 + value % 10
    return total % 10 == 0


@given(st.text(alphabet=string.digits, min_size=13, max_size=19))
def test_luhn_agrees_with_the_textbook(digits: str) -> None:
    assert luhn_ok(digits.encode()) == _textbook_luhn(digits)


def _luhn_complete(body: str) -> str:
    return next(body + d for d in string.digits if _textbook_luhn(body + d))


_cards = st.text(alphabet=string.digits, min_size=12, max_size=18).map(_luhn_complete)


def _grouped(number: str, separator: str) -> str:
    return separator.join(number[i : i + 4] for i in range(0, len(number), 4))


_filler = st.text(alphabet=string.ascii_letters + " ,;:!?", max_size=40)


@given(_filler, _cards, st.sampled_from(["", " ", "-"]), _filler)
@example("pay ", "4111111111111111", " ", " now")
def test_luhn_valid_numbers_are_found_anywhere(before: str, number: str, separator: str, after: str) -> None:
    written = _grouped(number, separator) if separator else number
    text = f"{before} {written} {after}"
    findings = _SCANNER.scan(text.encode())
    expected = (
        "national_id" if not separator and len(number) == 18 and national_id_ok(number.encode()) else "card"
    )
    assert [(f.rule.name, text.encode()[f.start : f.end].decode()) for f in findings] == [(expected, written)]


def _iban(country: str, bban: str) -> str:
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


_ibans = st.builds(
    _iban,
    st.text(alphabet=string.ascii_uppercase, min_size=2, max_size=2),
    st.text(alphabet=string.digits + string.ascii_uppercase, min_size=11, max_size=30),
)


@given(_ibans, st.data())
def test_ibans_pass_mod_97_and_a_changed_character_fails(iban: str, data: st.DataObject) -> None:
    assert iban_ok(iban.encode())
    assert _SCANNER.scan(f"to {iban} today".encode())[0].rule.name in ("iban", "national_id", "api_key")
    at = data.draw(st.integers(min_value=2, max_value=len(iban) - 1))
    alphabet = string.digits if iban[at].isdigit() else string.ascii_uppercase
    other = data.draw(st.sampled_from([c for c in alphabet if c != iban[at]]))
    assert not iban_ok((iban[:at] + other + iban[at + 1 :]).encode())


_pieces = st.sampled_from(
    [
        "jane.doe@example.com",
        "a@b.io",
        "4111 1111 1111 1111",
        "378282246310005",
        "GB82 WEST 1234 5698 7654 32",
        "078-05-1120",
        "11010519491231002X",
        "AB 12 34 56 C",
        "+44 20 7946 0958",
        "(415) 555-2671",
        "415-555-2671",
        "sk-abcdefghijklmnopqrstuvwxyz",
        "AKIAIOSFODNN7EXAMPLE",
        "xoxb-1234567890-abc",
        "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----",
        "Blue Harbor",
        "机密",
    ]
)
_noise = st.text(alphabet=string.ascii_letters + string.digits + " .-@+()[]:\n", max_size=12)
_texts = st.lists(_pieces | _noise, max_size=12).map("".join)


@given(_texts)
def test_every_finding_matches_its_rule_and_passes_its_check(text: str) -> None:
    data = text.encode()
    for finding in _SCANNER.scan(data):
        span = data[finding.start : finding.end]
        assert re2.compile(finding.rule.pattern.encode()).match(data, finding.start).end() == finding.end
        assert finding.rule.check is None or finding.rule.check(span)


_ALONE = [re2.compile(rule.pattern.encode()) for rule in _RULES]


def _first_match(data: bytes, start: int) -> tuple[int, int] | None:
    """The first rule in order whose pattern matches at `start` (leftmost-first), and its end."""
    for index, pattern in enumerate(_ALONE):
        match = pattern.match(data, start)
        if match is not None:
            return index, match.end()
    return None


def _reference_scan(data: bytes) -> list[tuple[str, int, int]]:
    """The scanner's contract, the slow way: at the leftmost position where a rule matches, the
    first rule in order that matches there names the match; when its check fails, the first
    later rule that matches there (non-empty) with its check holding; none: the match's text is
    skipped. The scan goes on after the match."""
    out: list[tuple[str, int, int]] = []
    position, size = 0, len(data)
    while position <= size:
        hit = next(
            ((start, *m) for start in range(position, size + 1) if (m := _first_match(data, start))), None
        )
        if hit is None:
            break
        start, first, end = hit
        for index in range(first, len(_RULES)):
            rule = _RULES[index]
            match = _ALONE[index].match(data, start)
            stop = end if index == first else (match.end() if match is not None else start)
            if (index == first or stop > start) and (rule.check is None or rule.check(data[start:stop])):
                out.append((rule.name, start, stop))
                end = stop
                break
        position = end if end > start else end + 1
    return out


@given(_texts)
@example("n 400000000000000002 4111 1111 1111 1111")  # 18 digits: not a Chinese ID, a card
@example("call 900-12-3456-789-012-3453 a@b.io")  # not an SSN (area 9xx): a card, a phone in it
@example("AKIAIOSFODNN7EXAMPLE4111 1111 1111 1111 a@b.io")
def test_the_scan_finds_what_trying_every_rule_at_every_position_finds(text: str) -> None:
    data = text.encode()
    found = [(f.rule.name, f.start, f.end) for f in _SCANNER.scan(data)]
    assert found == _reference_scan(data)


@given(_texts)
@example("x a@b.io 4111 1111 1111 1111 y")
@example("AKIAIOSFODNN7EXAMPLE4111 1111 1111 1111")  # a key glued to a card: no boundary before the mask
def test_redaction_leaves_no_match(text: str) -> None:
    data = text.encode()
    findings = _SCANNER.scan(data)
    assume(findings)
    decision, redacted = _REDACTING.classify(data)
    assert decision.redacted == len(findings)
    assert _SCANNER.scan(redacted) == []
    # The same through a JSON body: the text is replaced inside its string.
    body = json.dumps({"messages": [{"role": "user", "content": text}]}).encode()
    _, sent = _REDACTING.classify(body)
    assert _SCANNER.scan(json.loads(sent)["messages"][0]["content"].encode()) == []
