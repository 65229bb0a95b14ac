"""Fake personal data in the right shape: Luhn-valid card numbers, Chinese resident IDs with a
valid checksum, ``555`` US phone numbers, Chinese mobile numbers and API keys.

None of it is real: the ``clean`` stage's PII redaction must still recognise every one.
"""

from __future__ import annotations

import string

from .common import load_tables, rng

PII = load_tables("pii")

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_complete(prefix: str) -> str:
    for d in "0123456789":
        if luhn_ok(prefix + d):
            return prefix + d
    raise AssertionError


def make_card(prefix: str) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(15 - len(prefix)))
    return luhn_complete(body)


def group4(card: str, sep: str = " ") -> str:
    return sep.join(card[i : i + 4] for i in range(0, len(card), 4))


# GB 11643-1999 weights and check characters of the 18-digit resident ID.
CN_ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CN_ID_CHECK = "10X98765432"


def cn_id_check(first17: str) -> str:
    return CN_ID_CHECK[sum(int(c) * w for c, w in zip(first17, CN_ID_WEIGHTS, strict=True)) % 11]


def make_cn_id():
    region = rng.choice(PII["CN_ID_REGIONS"])
    y, m, d = rng.randint(1962, 2001), rng.randint(1, 12), rng.randint(1, 28)
    seq = f"{rng.randint(0, 999):03d}"
    first17 = f"{region}{y:04d}{m:02d}{d:02d}{seq}"
    return first17 + cn_id_check(first17), (y, m, d)


def make_cn_mobile():
    return rng.choice(PII["CN_MOBILE_PREFIXES"]) + "".join(
        rng.choice(string.digits) for _ in range(8)
    )


def make_us_phone(style):
    a, b = rng.randint(100, 999), rng.randint(1000, 9999)
    if style == 0:
        return f"555-{a}-{b}"
    return f"+1 (555) {a}-{b}"


def sk_key():
    return "sk-" + "".join(rng.choice(ALNUM) for _ in range(40))


def akia_key():
    return "AKIA" + "".join(rng.choice(UPPER_ALNUM) for _ in range(16))


def ghp_key():
    return "ghp_" + "".join(rng.choice(ALNUM) for _ in range(36))
