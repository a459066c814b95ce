"""The built-in detectors of sensitive data: a pattern (RE2 syntax) and, where the data carries
one, a check of its own (Luhn for card numbers, ISO 7064 mod 97-10 for IBANs, the check digit
of a Chinese resident ID). The pattern finds candidates; the check drops look-alikes (an order
number is not a card number), so only the few candidate spans ever reach Python code.

| detector | what it finds |
|---|---|
| `email` | an e-mail address (`local@domain.tld`) |
| `phone` | an international number written with `+` (8 to 15 digits, spaces, dots, dashes or brackets between) or a North American one (`(415) 555-2671`, `415-555-2671`, `415.555.2671`) |
| `card` | 13 to 19 digits, optionally grouped by spaces or dashes, passing the Luhn check |
| `iban` | an IBAN (country, check digits, 11 to 30 letters or digits, optionally in groups of four) passing mod 97 |
| `national_id` | a US Social Security number `123-45-6789` (not area 000, 666 or 9xx, group 00, serial 0000); a UK National Insurance number `AB 12 34 56 C` (valid prefix letters); a Chinese resident ID (18 characters, ISO 7064 MOD 11-2 check digit) |
| `api_key` | OpenAI and Anthropic (`sk-...`), AWS access key ids (`AKIA...`, `ASIA...`), GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`), Slack tokens (`xoxb-`, `xoxa-`, `xoxp-`, `xoxr-`, `xoxs-`), Google API keys (`AIza...`) |
| `private_key` | a PEM private key (`-----BEGIN ... PRIVATE KEY-----`, through its END line when present) |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DETECTORS", "Detector", "iban_ok", "luhn_ok", "national_id_ok", "phone_ok"]

Check = Callable[[bytes], bool]


@dataclass(frozen=True, slots=True)
class Detector:
    name: str
    pattern: str  # RE2 syntax, matched on UTF-8 bytes
    check: Check | None = None


# bytes.translate tables: digit characters to their values, and a digit value to the Luhn
# "double it, minus 9 past 9" value; the separators a number may carry are deleted.
_VALUES = bytes(range(256)).translate(bytes.maketrans(b"0123456789", bytes(range(10))))
_DOUBLED = bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]) + bytes(246)
_SEPARATORS = b" -.()+"


def luhn_ok(span: bytes) -> bool:
    """The Luhn checksum of the digits in `span` (spaces and dashes skipped) is 0. All in C:
    a translate and two sums over bytes."""
    digits = span.translate(_VALUES, _SEPARATORS)
    if not 13 <= len(digits) <= 19 or max(digits) > 9:
        return False
    return (sum(digits[-1::-2]) + sum(digits[-2::-2].translate(_DOUBLED))) % 10 == 0


def iban_ok(span: bytes) -> bool:
    """ISO 13616: the first four characters moved to the end, letters as 10..35, mod 97 is 1."""
    text = span.replace(b" ", b"").decode("ascii").upper()
    if not 15 <= len(text) <= 34:
        return False
    rearranged = text[4:] + text[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_CHECK = "10X98765432"
# The two-letter prefixes HMRC never issues (and the ones with a bad first or second letter are
# already outside the pattern).
_NINO_BAD_PREFIXES = frozenset({b"BG", b"GB", b"NK", b"KN", b"TN", b"NT", b"ZZ"})


def phone_ok(span: bytes) -> bool:
    """An international number has 8 to 15 digits (E.164); a North American one always 10."""
    return 8 <= len(span.translate(None, _SEPARATORS)) <= 15


def national_id_ok(span: bytes) -> bool:
    """The checks each national ID format has: SSN number ranges, NINO prefixes, the Chinese
    resident ID's check digit."""
    if len(span) == 11 and span[3:4] == b"-":  # SSN: AAA-GG-SSSS
        area, group, serial = span[:3], span[4:6], span[7:]
        return area not in (b"000", b"666") and area[:1] != b"9" and group != b"00" and serial != b"0000"
    if len(span) == 18 and span[:17].isdigit():  # Chinese resident ID
        total = sum(int(chr(c)) * w for c, w in zip(span[:17], _CN_WEIGHTS, strict=True))
        return _CN_CHECK[total % 11] == chr(span[17]).upper()
    return span[:2].upper() not in _NINO_BAD_PREFIXES  # NINO


# Not inside a longer run of letters, digits or underscores (RE2's \b is ASCII). Every detector
# that starts or ends with such a character holds to a boundary there, so that a mask, whose
# brackets are boundaries, never makes a new match of its neighbours.
_B = r"\b"

DETECTORS: tuple[Detector, ...] = (
    Detector(
        "private_key",
        r"-----BEGIN [A-Z ]{0,20}PRIVATE KEY-----"
        r"(?:[A-Za-z0-9+/=\s:,.-]*?-----END [A-Z ]{0,20}PRIVATE KEY-----)?",
    ),
    Detector(
        "api_key",
        _B + r"(?:sk-[A-Za-z0-9_-]{20,}|(?:AKIA|ASIA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36}"
        r"|github_pat_[A-Za-z0-9_]{22,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})" + _B,
    ),
    Detector("email", r"[A-Za-z0-9_.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
    Detector(
        "national_id",
        _B + r"(?:\d{3}-\d{2}-\d{4}|[1-9]\d{16}[0-9Xx]"
        r"|[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D])" + _B,
        national_id_ok,
    ),
    Detector("card", _B + r"\d(?:[ -]?\d){12,18}" + _B, luhn_ok),
    Detector("iban", _B + r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}" + _B, iban_ok),
    Detector(
        "phone",
        r"(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{1,4}){1,5}"
        r"|(?:\(\d{3}\) ?|" + _B + r"\d{3}[.-])\d{3}[.-]\d{4})" + _B,
        phone_ok,
    ),
)
"""In the order they are tried at one position: the first whose pattern and check both hold
names the match."""
