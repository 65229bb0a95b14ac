"""Regex-based PII detection and scrubbing for instruction-tuning text (English and Chinese).

Every hit is replaced by a typed placeholder:

========================  =================
kind                      placeholder
========================  =================
``api_key``               ``[API_KEY]``
``email``                 ``[EMAIL]``
``cn_id``                 ``[CN_ID]``
``credit_card``           ``[CREDIT_CARD]``
``phone``                 ``[PHONE]``
``ip``                    ``[IP]``
========================  =================

Kinds are always applied in the order above (whatever order the caller names them in), so that
longer, more specific tokens are replaced before the shorter digit patterns could split them.

Design notes:

* ``\\b`` is useless between CJK characters and digits (both are ``\\w``), so every digit pattern
  is delimited with ASCII lookarounds such as ``(?<![0-9A-Za-z_])`` / ``(?![0-9A-Za-z_])``; the
  lookarounds also stop a pattern from starting or ending inside a longer digit run, so e.g. a
  phone number is never carved out of a Luhn-invalid card number or a wrong-checksum ID.
* Only ASCII digits ``0-9`` are recognised (full-width digits such as ``１３８`` are not).
* Credit cards must pass the Luhn check and Chinese IDs the ISO 7064 MOD 11-2 check; a
  candidate failing its check is left alone.
* Scrubbing is repeated until nothing changes (a replacement can expose a neighbour glued to
  it, e.g. ``a@b.com_c@d.com``), so the output is a fixed point and scrubbing is idempotent.
* A cheap pre-check (``_may_contain_pii``: a few substring tests and small fast regexes) rejects
  texts that cannot contain any PII (no ``@``, no 7-digit run, no key prefix...), which makes
  the common case cheap; it is a strict superset test, so it never changes a result.

All functions are pure: no I/O, no global state besides the precompiled patterns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

__all__ = [
    "PII_KINDS",
    "PLACEHOLDERS",
    "cn_id_valid",
    "luhn_valid",
    "scrub_column",
    "scrub_json_column",
    "scrub_many",
    "scrub_pii",
]

PII_KINDS: tuple[str, ...] = ("email", "phone", "ip", "credit_card", "api_key", "cn_id")

PLACEHOLDERS: dict[str, str] = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "ip": "[IP]",
    "credit_card": "[CREDIT_CARD]",
    "api_key": "[API_KEY]",
    "cn_id": "[CN_ID]",
}

# ---------------------------------------------------------------------------------------------
# Checksums
# ---------------------------------------------------------------------------------------------

_CN_ID_WEIGHTS: tuple[int, ...] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK_CHARS = "10X98765432"
_ASCII_DIGITS = frozenset("0123456789")


def luhn_valid(digits: str) -> bool:
    """Return True if ``digits`` passes the Luhn (mod 10) checksum.

    Single spaces and dashes are ignored; any other non-ASCII-digit character, or an empty
    string, gives False.

    >>> luhn_valid("4111 1111 1111 1111")
    True
    >>> luhn_valid("4111111111111112")
    False
    >>> luhn_valid("")
    False
    """
    s = digits.replace(" ", "").replace("-", "")
    if not s or not _ASCII_DIGITS.issuperset(s):
        return False
    total = 0
    for i, ch in enumerate(reversed(s)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def cn_id_valid(candidate: str) -> bool:
    """Return True if ``candidate`` is a well-formed 18-character Chinese resident ID number.

    Checks: 17 ASCII digits followed by a digit or ``X``/``x``; a birth date ``YYYYMMDD`` at
    positions 7-14 with year 1900-2099, month 01-12 and day 01-31; and the ISO 7064 MOD 11-2
    check character.

    >>> cn_id_valid("11010519491231002X")
    True
    >>> cn_id_valid("110105194912310021")  # wrong check character
    False
    >>> cn_id_valid("11010519491331002X")  # month 13
    False
    """
    if len(candidate) != 18:
        return False
    body, check = candidate[:17], candidate[17].upper()
    if not _ASCII_DIGITS.issuperset(body) or check not in _CN_ID_CHECK_CHARS:
        return False
    year, month, day = int(body[6:10]), int(body[10:12]), int(body[12:14])
    if not (1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= 31):
        return False
    total = sum(int(c) * w for c, w in zip(body, _CN_ID_WEIGHTS, strict=True))
    return _CN_ID_CHECK_CHARS[total % 11] == check


# ---------------------------------------------------------------------------------------------
# Patterns (precompiled at import time)
# ---------------------------------------------------------------------------------------------

# Digit-run boundaries that also work next to CJK characters (unlike \b). The second
# lookbehind / lookahead keep us out of decimals and dotted / dashed digit sequences.
_DLB = r"(?<![0-9A-Za-z_+])(?<![0-9][.-])"
_DLA = r"(?![0-9A-Za-z_])(?![.-][0-9])"

_API_KEY_RE = re.compile(
    r"""
    (?<![A-Za-z0-9_-])
    (?:
        (?P<tok>
            sk-(?:proj-)?[A-Za-z0-9_-]{20,}
          | AKIA[0-9A-Z]{16}
          | gh[pousr]_[A-Za-z0-9]{20,}
          | github_pat_[A-Za-z0-9_]{20,}
          | xox[baprs]-[A-Za-z0-9-]{10,}
          | AIza[0-9A-Za-z_-]{35}
        )
        (?![A-Za-z0-9_-])
      | (?P<bearer_kw>(?i:bearer)[ \t]+)
        (?P<bearer_val>[A-Za-z0-9._~+/=-]{20,})
        (?![A-Za-z0-9._~+/=-])
    )
    | (?<![A-Za-z0-9])
      (?P<assign_kw>
        (?i:
            (?:x-)?api[_-]?key | api[_-]?secret | secret[_-]?key | client[_-]?secret
          | private[_-]?key | (?:access|auth|refresh)[_-]?token
        )
        ["']?[ \t]*[:=][ \t]*["']?
      )
      (?=[A-Za-z_./+=-]*[0-9])              # value must contain a digit (skips YOUR_API_KEY)
      (?P<assign_val>[A-Za-z0-9_./+=-]{12,})
      (?![A-Za-z0-9_./+=(\[-])              # ...and must not be code: os.getenv(, self.x[
    """,
    re.VERBOSE | re.ASCII,
)

_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+-])"
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
    r"(?![A-Za-z0-9-])"
)

_CN_ID_RE = re.compile(
    _DLB + r"[1-9][0-9]{5}(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
    r"[0-9]{3}[0-9Xx]" + _DLA
)

_CREDIT_CARD_RE = re.compile(
    _DLB
    + r"""
    (?:
        [0-9]{13,19}                                                  # contiguous
      | [0-9]{4}(?P<s1>[ -])[0-9]{4}(?P=s1)[0-9]{4}(?P=s1)[0-9]{1,4}  # 4-4-4-(1..4)
        (?:(?P=s1)[0-9]{1,3})?                                        #   (-1..3): up to 19
      | [0-9]{4}(?P<s2>[ -])[0-9]{6}(?P=s2)[0-9]{4,5}                 # Amex / Diners 4-6-5
    )
    """
    + _DLA,
    re.VERBOSE,
)

_PHONE_RE = re.compile(
    r"(?<![0-9A-Za-z_+])(?<![0-9][.-])"
    + r"""
    (?:
        (?:\+?86[ -]?)?1[3-9][0-9](?:[0-9]{8}|(?P<cs>[ -])[0-9]{4}(?P=cs)[0-9]{4})   # CN mobile
      | 0[1-9][0-9]{1,2}-[2-9][0-9]{6,7}                                         # CN landline
      | (?P<intl>                                                                # +CC ...
            \+[0-9]{8,15}
          | \+[0-9]{1,3}
            (?:[ .-]?\([0-9]{1,4}\)[ .-]?|[ .-])[0-9]{1,5}
            (?:[ .-][0-9]{2,5}){0,4}
        )
      | (?:1[ .-])?                                                              # US / NANP
        (?:
            \([0-9]{3}\)[ ]?[0-9]{3}[ .-][0-9]{4}
          | [0-9]{3}(?P<us>[ .-])[0-9]{3}(?P=us)[0-9]{4}
        )
    )
    """
    + _DLA,
    re.VERBOSE,
)

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IP_RE = re.compile(
    rf"(?<![0-9A-Za-z_.])(?:{_OCTET}\.){{3}}{_OCTET}(?![0-9A-Za-z_]|\.[0-9])"
    r"|(?<![0-9A-Za-z_:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![0-9A-Za-z_:])"
)

# Pre-check: every pattern above needs at least one of these features, so a text showing none
# of them cannot contain PII. Each piece is chosen so that re can scan for it quickly (a
# literal or small character-class first character); see _may_contain_pii.
_PRE_DIGITS_RE = re.compile(
    r"[+0-9](?:(?<=[0-9])"
    r"(?:[0-9]{6}"  # cn_id, contiguous cards, CN mobile / landline
    r"|[ .-][0-9]{3}"  # grouped cards, US / grouped CN phones
    r"|\.[0-9]{1,3}\.[0-9])"  # IPv4
    r"|(?<=\+)[0-9])"  # international phones
)
_PRE_HEX_COLON_RE = re.compile(r":(?<=[0-9A-Fa-f]:)[0-9A-Fa-f]")  # IPv6
_PRE_PREFIX_RE = re.compile(r"sk-|gh[pousr]_|github_pat_|xox[baprs]-")  # api keys
# Bearer tokens and key assignments: _API_KEY_RE (ASCII case folding) needs "bearer" and a
# blank, or a keyword ending in key / secret / token, then an optional quote, blanks and ":" or
# "=". (The bare words are common in prose: "key points", "keyboard", "tokens".)
_PRE_KEYWORD_RE = re.compile(
    r"""(?:key|token|secret)["']?[ \t]*[:=]|bearer[ \t]""", re.IGNORECASE | re.ASCII
)


# The same test as _may_contain_pii as one RE2 pattern (no lookbehind: each alternative spells
# out what the lookbehinds required), run over a whole column at once by pyarrow. It matches
# at least every text _may_contain_pii accepts (RE2's case folding covers the ASCII one of
# _PRE_KEYWORD_RE), so the per-text checks only run on the texts it flags.
_PRESCREEN_RE2 = (
    r"@|AKIA|AIza"
    r"|[0-9](?:[0-9]{6}|[ .\-][0-9]{3}|\.[0-9]{1,3}\.[0-9])"
    r"|\+[0-9]"
    r"|[0-9A-Fa-f]:[0-9A-Fa-f]"
    r"|sk-|gh[pousr]_|github_pat_|xox[baprs]-"
    r"|(?i:key|token|secret)[\"']?[ \t]*[:=]|(?i:bearer)[ \t]"
)


def _prescreen(texts: Sequence[str]) -> list[bool]:
    """Per text: may it contain PII (a superset of _may_contain_pii, vectorised)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found = pc.match_substring_regex(pa.array(texts, pa.string()), _PRESCREEN_RE2)
    flags: list[bool] = found.to_numpy(zero_copy_only=False).tolist()
    return flags


def _may_contain_pii(text: str) -> bool:
    """Cheap superset test: False only if no pattern of any kind can match ``text``."""
    if "@" in text or "AKIA" in text or "AIza" in text:
        return True
    if _PRE_DIGITS_RE.search(text) is not None:
        return True
    if ":" in text and _PRE_HEX_COLON_RE.search(text) is not None:
        return True
    if _PRE_PREFIX_RE.search(text) is not None:
        return True
    return _PRE_KEYWORD_RE.search(text) is not None


# ---------------------------------------------------------------------------------------------
# Scrubbing
# ---------------------------------------------------------------------------------------------


def _normalise_kinds(kinds: Iterable[str] | str) -> frozenset[str]:
    names = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    unknown = [k for k in names if k not in PLACEHOLDERS]
    if unknown:
        raise ValueError(
            f"unknown PII kind(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(PII_KINDS)}"
        )
    return frozenset(names)


def _api_key_sub(text: str, placeholder: str) -> tuple[str, int]:
    def repl(m: re.Match[str]) -> str:
        if m.group("tok") is not None:
            return placeholder
        if m.group("bearer_kw") is not None:
            return m.group("bearer_kw") + placeholder
        return m.group("assign_kw") + placeholder

    return _API_KEY_RE.subn(repl, text)


def _checked_sub(
    pattern: re.Pattern[str], check: Callable[[str], bool]
) -> Callable[[str, str], tuple[str, int]]:
    def sub(text: str, placeholder: str) -> tuple[str, int]:
        n = 0

        def repl(m: re.Match[str]) -> str:
            nonlocal n
            if check(m.group()):
                n += 1
                return placeholder
            return m.group()

        return pattern.sub(repl, text), n

    return sub


def _intl_phone_ok(candidate: str) -> bool:
    # E.164 allows at most 15 digits; fewer than 8 is more likely arithmetic than a number.
    n = sum(c in _ASCII_DIGITS for c in candidate)
    return 8 <= n <= 15


def _phone_sub(text: str, placeholder: str) -> tuple[str, int]:
    n = 0

    def repl(m: re.Match[str]) -> str:
        nonlocal n
        if m.group("intl") is None or _intl_phone_ok(m.group()):
            n += 1
            return placeholder
        return m.group()

    return _PHONE_RE.sub(repl, text), n


def _plain_sub(pattern: re.Pattern[str]) -> Callable[[str, str], tuple[str, int]]:
    def sub(text: str, placeholder: str) -> tuple[str, int]:
        return pattern.subn(placeholder, text)

    return sub


# (kind, cheap guard, substitution), in application order.
_SCRUBBERS: tuple[tuple[str, Callable[[str], bool], Callable[[str, str], tuple[str, int]]], ...] = (
    ("api_key", lambda t: True, _api_key_sub),
    ("email", lambda t: "@" in t, _plain_sub(_EMAIL_RE)),
    ("cn_id", lambda t: True, _checked_sub(_CN_ID_RE, cn_id_valid)),
    ("credit_card", lambda t: True, _checked_sub(_CREDIT_CARD_RE, luhn_valid)),
    ("phone", lambda t: True, _phone_sub),
    ("ip", lambda t: "." in t or ":" in t, _plain_sub(_IP_RE)),
)


def _scrub(text: str, kinds: frozenset[str]) -> tuple[str, dict[str, int]]:
    # Repeat until nothing changes: a replacement can expose a neighbour that a lookaround had
    # blocked (e.g. "a@b.com_c@d.com", "13812345678+13812345678"), and the result must be a
    # fixed point so that scrubbing is idempotent. Terminates: every replacement lowers the
    # number of digits and "@" or (api_key, which adds neither) shortens the text.
    counts: dict[str, int] = {}
    changed = True
    while changed:
        changed = False
        for kind, guard, sub in _SCRUBBERS:
            if kind in kinds and guard(text):
                text, n = sub(text, PLACEHOLDERS[kind])
                if n:
                    counts[kind] = counts.get(kind, 0) + n
                    changed = True
    return text, counts


def scrub_pii(text: str, kinds: Iterable[str] = PII_KINDS) -> tuple[str, dict[str, int]]:
    """Return the scrubbed text and counts per kind found (only kinds with count > 0).

    ``kinds`` restricts which kinds are scrubbed (a single kind name is accepted too); kinds are
    applied in the fixed order api_key, email, cn_id, credit_card, phone, ip. Unknown kind names
    raise ValueError.

    >>> scrub_pii("Mail bob@example.com or call (555) 123-4567.")
    ('Mail [EMAIL] or call [PHONE].', {'email': 1, 'phone': 1})
    >>> scrub_pii("我的手机号是13812345678。")
    ('我的手机号是[PHONE]。', {'phone': 1})
    >>> scrub_pii("17 plus 25 is 42; v1.2.3 costs $19.99 in 2024.")
    ('17 plus 25 is 42; v1.2.3 costs $19.99 in 2024.', {})
    >>> scrub_pii("bob@example.com 13812345678", kinds=["email"])
    ('[EMAIL] 13812345678', {'email': 1})
    """
    wanted = _normalise_kinds(kinds)
    if not _may_contain_pii(text):
        return text, {}
    return _scrub(text, wanted)


def scrub_many(
    texts: Sequence[str], kinds: Iterable[str] = PII_KINDS
) -> tuple[list[str], list[dict[str, int]]]:
    """Scrub many texts; equal to ``[scrub_pii(t, kinds) for t in texts]``, unzipped.

    Fast path for large tables: ``kinds`` is validated once and one combined pre-screen regex,
    run over all texts at once, skips rows that cannot contain PII; the other rows are checked
    and scrubbed one by one.

    >>> scrub_many(["hello", "ip 10.0.0.1", "身份证11010519491231002X"])
    (['hello', 'ip [IP]', '身份证[CN_ID]'], [{}, {'ip': 1}, {'cn_id': 1}])
    """
    wanted = _normalise_kinds(kinds)
    precheck = _may_contain_pii
    out_texts: list[str] = []
    out_counts: list[dict[str, int]] = []
    add_text, add_counts = out_texts.append, out_counts.append
    flagged = _prescreen(texts) if texts else []
    for text, maybe in zip(texts, flagged, strict=True):
        if not maybe or not precheck(text):
            add_text(text)
            add_counts({})
        else:
            scrubbed, counts = _scrub(text, wanted)
            add_text(scrubbed)
            add_counts(counts)
    return out_texts, out_counts


def scrub_column(
    texts: Sequence[str], kinds: Iterable[str] = PII_KINDS
) -> tuple[list[str], list[tuple[int, dict[str, int]]]]:
    """``scrub_many`` for a table column: the scrubbed texts, and (position, counts) of only
    the texts where PII was found (no per-text work for the others).

    >>> scrub_column(["hello", "ip 10.0.0.1", "key"])
    (['hello', 'ip [IP]', 'key'], [(1, {'ip': 1})])
    """
    wanted = _normalise_kinds(kinds)
    out = list(texts)
    found: list[tuple[int, dict[str, int]]] = []
    flags = _prescreen(texts) if texts else []
    for i in [i for i, maybe in enumerate(flags) if maybe]:
        if _may_contain_pii(out[i]):
            out[i], counts = _scrub(out[i], wanted)
            if counts:
                found.append((i, counts))
    return out, found


def _json_strings(value: Any, out: list[str]) -> None:
    """Every string of a decoded JSON value (keys included), depth first, in order."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            _json_strings(item, out)
    elif isinstance(value, dict):
        for key, item in value.items():
            out.append(key)
            _json_strings(item, out)


def _json_replace(value: Any, scrubbed: Iterator[str]) -> Any:
    """``value`` with its strings taken in turn from ``scrubbed`` (the order of _json_strings)."""
    if isinstance(value, str):
        return next(scrubbed)
    if isinstance(value, list):
        return [_json_replace(item, scrubbed) for item in value]
    if isinstance(value, dict):
        # A key that was PII ("bob@example.com": {...}) becomes its placeholder; two such keys
        # merge into one, which loses a value but never the person's address.
        return {next(scrubbed): _json_replace(item, scrubbed) for key, item in value.items()}
    return value


def scrub_json_column(
    texts: Sequence[str], kinds: Iterable[str] = PII_KINDS
) -> tuple[list[str], list[tuple[int, dict[str, int]]]]:
    """``scrub_column`` for a column of JSON texts (tool definitions, tool calls and their
    observations): every string inside, keys too, is scrubbed after decoding, so escapes (a
    ``\\n`` before a phone number) and JSON nested in strings (OpenAI ``arguments``) cannot
    hide PII from the patterns; a text with no PII is returned unchanged (same bytes), a changed
    one is re-encoded as ``json.dumps(..., ensure_ascii=False)``. A text that is not JSON is
    scrubbed as plain text.

    >>> call = {"name": "mail", "arguments": json.dumps({"to": "bob@example.com"})}
    >>> texts, found = scrub_json_column(["[]", json.dumps([call])])
    >>> texts[0], json.loads(json.loads(texts[1])[0]["arguments"]), found
    ('[]', {'to': '[EMAIL]'}, [(1, {'email': 1})])
    """
    wanted = _normalise_kinds(kinds)
    out = list(texts)
    found: list[tuple[int, dict[str, int]]] = []
    for i, text in enumerate(out):
        if text in ("", "[]", "{}"):
            continue
        try:
            value = json.loads(text)
        except ValueError:
            scrubbed_text, counts = scrub_many([text], wanted)
            if counts[0]:
                out[i] = scrubbed_text[0]
                found.append((i, counts[0]))
            continue
        strings: list[str] = []
        _json_strings(value, strings)
        scrubbed, per_string = scrub_many(strings, wanted)
        total: dict[str, int] = {}
        for string_counts in per_string:
            for kind, n in string_counts.items():
                total[kind] = total.get(kind, 0) + n
        if total:
            out[i] = json.dumps(_json_replace(value, iter(scrubbed)), ensure_ascii=False)
            found.append((i, total))
    return out, found
