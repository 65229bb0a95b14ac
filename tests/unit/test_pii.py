"""Known-answer tests for sftops.data.pii (regex PII scrubbing, English and Chinese)."""

from __future__ import annotations

import doctest
import random

import pytest

from sftops.data import pii
from sftops.data.pii import PII_KINDS, cn_id_valid, luhn_valid, scrub_many, scrub_pii

# ----------------------------------------------------------------------------------------------
# Helpers computing check digits independently of the module under test
# ----------------------------------------------------------------------------------------------


def cn_check_char(body17: str) -> str:
    """ISO 7064 MOD 11-2 check character; weight of position i (0-based) is 2**(17-i) mod 11."""
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(body17))
    return "10X98765432"[total % 11]


def luhn_complete(prefix: str) -> str:
    """Append the Luhn check digit to ``prefix``."""
    for d in "0123456789":
        digits = [int(c) for c in prefix + d][::-1]
        total = sum(
            x if i % 2 == 0 else (x * 2 - 9 if x * 2 > 9 else x * 2) for i, x in enumerate(digits)
        )
        if total % 10 == 0:
            return prefix + d
    raise AssertionError("unreachable")


PUBLISHED_ID = "11010519491231002X"  # the standard published GB 11643 example
COMPUTED_ID = "44030419900307123" + cn_check_char("44030419900307123")
WRONG_ID = next(
    COMPUTED_ID[:17] + c
    for c in "0123456789"
    if c != COMPUTED_ID[17] and not luhn_valid(COMPUTED_ID[:17] + c)
)
CARD_19 = luhn_complete("622202100112345678")  # 19-digit UnionPay-style number


def test_helpers_agree_with_known_values() -> None:
    assert cn_check_char(PUBLISHED_ID[:17]) == "X"
    assert luhn_complete("411111111111111") == "4111111111111111"
    assert len(COMPUTED_ID) == 18
    assert len(CARD_19) == 19


# ----------------------------------------------------------------------------------------------
# Checksums
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("4111111111111111", True),  # Visa test number
        ("4111 1111 1111 1111", True),  # separators ignored
        ("4111-1111-1111-1111", True),
        ("5555555555554444", True),  # Mastercard
        ("378282246310005", True),  # Amex, 15 digits
        ("6011111111111117", True),  # Discover
        ("4222222222222", True),  # 13 digits
        (CARD_19, True),
        ("4111111111111112", False),  # last digit off by one
        ("1234567812345678", False),
        ("", False),
        ("4111a11111111111", False),
        ("４１１１１１１１１１１１１１１１", False),  # full-width digits are not ASCII
    ],
)
def test_luhn_valid(digits: str, expected: bool) -> None:
    assert luhn_valid(digits) is expected


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (PUBLISHED_ID, True),
        (PUBLISHED_ID.lower(), True),  # lower-case x accepted
        (COMPUTED_ID, True),
        (WRONG_ID, False),  # wrong check digit
        ("110105194912310021", False),
        ("11010519491331002X", False),  # month 13 (not a plausible birth date)
        ("11010518991231002X", False),  # year 1899
        ("1101051949123100X", False),  # 17 characters
        ("11010519491231002Y", False),
        ("1101051949123100XX", False),
    ],
)
def test_cn_id_valid(candidate: str, expected: bool) -> None:
    assert cn_id_valid(candidate) is expected


def test_cn_id_valid_with_every_wrong_check_char() -> None:
    for c in "0123456789X":
        assert cn_id_valid(COMPUTED_ID[:17] + c) is (c == COMPUTED_ID[17])


# ----------------------------------------------------------------------------------------------
# Known answers per kind: (input, expected scrubbed text, expected counts)
# ----------------------------------------------------------------------------------------------

POSITIVES: list[tuple[str, str, dict[str, int]]] = [
    # email
    ("Mail bob.smith+tag@example.co.uk.", "Mail [EMAIL].", {"email": 1}),
    ("邮箱是zhang.san@qq.com。", "邮箱是[EMAIL]。", {"email": 1}),
    ("a@b.io, c_d@e-f.org", "[EMAIL], [EMAIL]", {"email": 2}),
    # phone: US / international
    ("Call 555-123-4567 now", "Call [PHONE] now", {"phone": 1}),
    ("Call (555) 123-4567.", "Call [PHONE].", {"phone": 1}),
    ("Call +1 555 123 4567", "Call [PHONE]", {"phone": 1}),
    ("+1-555-123-4567", "[PHONE]", {"phone": 1}),
    ("+1 (555) 123-4567 ext", "[PHONE] ext", {"phone": 1}),
    ("1-555-123-4567", "[PHONE]", {"phone": 1}),
    ("555.123.4567", "[PHONE]", {"phone": 1}),
    ("UK office: +44 20 7946 0958.", "UK office: [PHONE].", {"phone": 1}),
    ("call 555 123 4567 or 555 765 4321", "call [PHONE] or [PHONE]", {"phone": 2}),
    # phone: Chinese mobile / landline, adjacent to CJK characters
    ("我的手机号是13812345678。", "我的手机号是[PHONE]。", {"phone": 1}),
    ("电话+86 138 1234 5678请联系", "电话[PHONE]请联系", {"phone": 1}),
    ("手机：+8613912345678", "手机：[PHONE]", {"phone": 1}),
    ("电话：138-1234-5678，谢谢", "电话：[PHONE]，谢谢", {"phone": 1}),
    ("座机010-62345678", "座机[PHONE]", {"phone": 1}),
    # ip
    ("ip 192.168.1.1.", "ip [IP].", {"ip": 1}),
    ("服务器IP是192.168.0.1，端口8080", "服务器IP是[IP]，端口8080", {"ip": 1}),
    ("from 10.0.0.255 to 255.255.255.0", "from [IP] to [IP]", {"ip": 2}),
    ("v6 fe80:0000:0000:0000:0202:b3ff:fe1e:8329 addr", "v6 [IP] addr", {"ip": 1}),
    # credit card (Luhn-valid)
    ("card 4111 1111 1111 1111 exp", "card [CREDIT_CARD] exp", {"credit_card": 1}),
    ("card 4111-1111-1111-1111", "card [CREDIT_CARD]", {"credit_card": 1}),
    ("卡号4111111111111111。", "卡号[CREDIT_CARD]。", {"credit_card": 1}),
    ("amex 3782 822463 10005", "amex [CREDIT_CARD]", {"credit_card": 1}),
    (
        "mc 5555555555554444, visa13 4222222222222",
        "mc [CREDIT_CARD], visa13 [CREDIT_CARD]",
        {"credit_card": 2},
    ),
    (f"银联卡{CARD_19}", "银联卡[CREDIT_CARD]", {"credit_card": 1}),
    ("card 4111 1111 1111 1111 2023", "card [CREDIT_CARD] 2023", {"credit_card": 1}),
    # cn_id
    (f"ID {PUBLISHED_ID}", "ID [CN_ID]", {"cn_id": 1}),
    (f"身份证号{PUBLISHED_ID.lower()}。", "身份证号[CN_ID]。", {"cn_id": 1}),
    (f"我的身份证是{COMPUTED_ID}，请保密", "我的身份证是[CN_ID]，请保密", {"cn_id": 1}),
    # api keys (token-shaped keys replaced whole; Bearer / assignments: value only)
    ("key sk-abcdefghijklmnopqrstuvwxyz123456", "key [API_KEY]", {"api_key": 1}),
    ("sk-proj-abc_DEF-1234567890abcdefghij", "[API_KEY]", {"api_key": 1}),
    ("aws AKIAIOSFODNN7EXAMPLE", "aws [API_KEY]", {"api_key": 1}),
    ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[API_KEY]", {"api_key": 1}),
    ("gho_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", "[API_KEY]", {"api_key": 1}),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "[API_KEY]", {"api_key": 1}),
    ("slack xoxb-123456789012-abcdefghijkl", "slack [API_KEY]", {"api_key": 1}),
    ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "[API_KEY]", {"api_key": 1}),
    (
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def",
        "Authorization: Bearer [API_KEY]",
        {"api_key": 1},
    ),
    ("api_key=abc123def456ghi789", "api_key=[API_KEY]", {"api_key": 1}),
    ('API_KEY = "abc123def456ghi789"', 'API_KEY = "[API_KEY]"', {"api_key": 1}),
    ('{"api_key": "abc123def456ghi789"}', '{"api_key": "[API_KEY]"}', {"api_key": 1}),
    ("X-API-Key: 0123456789abcdef0123", "X-API-Key: [API_KEY]", {"api_key": 1}),
    ("OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwxyz1", "OPENAI_API_KEY=[API_KEY]", {"api_key": 1}),
    (
        "密钥是sk-abcdefghijklmnopqrstuvwxyz123456，别泄露",
        "密钥是[API_KEY]，别泄露",
        {"api_key": 1},
    ),
    # several kinds at once
    (
        f"phone: 13812345678, id {PUBLISHED_ID}, mail a@b.com",
        "phone: [PHONE], id [CN_ID], mail [EMAIL]",
        {"phone": 1, "cn_id": 1, "email": 1},
    ),
    (
        "联系张三：zhangsan@example.com，电话13912345678，IP 10.1.2.3",
        "联系张三：[EMAIL]，电话[PHONE]，IP [IP]",
        {"email": 1, "phone": 1, "ip": 1},
    ),
    # glued hits are all found (fixed point)
    ("a@b.com_c@d.com", "[EMAIL][EMAIL]", {"email": 2}),
    ("13812345678+13812345678", "[PHONE][PHONE]", {"phone": 2}),
]

NEGATIVES: list[str] = [
    "17 plus 25 is 42",
    "What is 12 * 34? It is 408.",
    "In 2023, revenue grew 12% to $1,234,567.89.",
    "The price is ¥1999 or $29.99.",
    "2023年公司营收增长了百分之十二，达到3000万元。",
    "小明有3个苹果，又买了5个，一共有8个。",
    "from 1990-2020, see pages 12-345",
    "2023-10-15 12:30:45",
    "Version 1.2.3 released; pi is 3.14159265358979323",
    "1.2.3.4.5",
    "ip 256.1.1.1",
    "Order #12345678",
    "timestamp 1700000000",
    "5551234567",
    "2+3=5 and +3 4",
    "bad card 4111111111111112",
    "bad card 4111 1111 1111 1112",
    f"wrong-checksum id {WRONG_ID}",
    f"错误的身份证{WRONG_ID}。",
    "@user hi, a@b is not an email",
    "task-abcdefghijklmnopqrstuvwxyz and sk-short",
    "api_key = os.getenv('OPENAI_API_KEY')",
    "api_key=YOUR_API_KEY_HERE",
    "The key idea: a secret token of trust.",
    "Note: the function returns None.",
    "今天天气很好，我们去公园散步吧。",
    "",
]


@pytest.mark.parametrize(("text", "expected", "counts"), POSITIVES)
def test_scrub_positives(text: str, expected: str, counts: dict[str, int]) -> None:
    assert scrub_pii(text) == (expected, counts)


@pytest.mark.parametrize("text", NEGATIVES)
def test_scrub_negatives_untouched(text: str) -> None:
    assert scrub_pii(text) == (text, {})


def test_wrong_checksum_id_is_never_an_id() -> None:
    for c in "0123456789X":
        candidate = COMPUTED_ID[:17] + c
        out, counts = scrub_pii(f"号码{candidate}。")
        if c == COMPUTED_ID[17]:
            assert (out, counts) == ("号码[CN_ID]。", {"cn_id": 1})
        else:
            assert "cn_id" not in counts
            assert "phone" not in counts
            # 18 Luhn-valid digits are a card number; anything else stays as it was.
            if luhn_valid(candidate):
                assert out == "号码[CREDIT_CARD]。"
            else:
                assert out == f"号码{candidate}。"


def test_phone_does_not_eat_card_or_id_digits() -> None:
    # The Chinese-mobile-like run "13812345678" inside longer digit runs is not a phone.
    for text in ("41381234567811", "4138123456781111", "卡4138123456781111号"):
        assert "[PHONE]" not in scrub_pii(text)[0]
    assert scrub_pii(f"{PUBLISHED_ID} 13812345678") == (
        "[CN_ID] [PHONE]",
        {"cn_id": 1, "phone": 1},
    )


# ----------------------------------------------------------------------------------------------
# kinds, errors, idempotency, scrub_many
# ----------------------------------------------------------------------------------------------


def test_kinds_restriction() -> None:
    text = "bob@example.com 13812345678 10.0.0.1"
    assert scrub_pii(text, kinds=["email"]) == ("[EMAIL] 13812345678 10.0.0.1", {"email": 1})
    assert scrub_pii(text, kinds=("phone", "ip")) == (
        "bob@example.com [PHONE] [IP]",
        {"phone": 1, "ip": 1},
    )
    assert scrub_pii(text, kinds="email") == scrub_pii(text, kinds=["email"])
    assert scrub_pii(text, kinds=[]) == (text, {})
    assert scrub_many([text], kinds=["email"]) == (["[EMAIL] 13812345678 10.0.0.1"], [{"email": 1}])


def test_kind_order_is_fixed_regardless_of_argument_order() -> None:
    text = "card 4111 1111 1111 1111"
    assert scrub_pii(text, kinds=["phone", "credit_card"]) == scrub_pii(text)


@pytest.mark.parametrize("bad", [["emails"], ["email", "ssn"], "passport"])
def test_unknown_kind_raises(bad: list[str] | str) -> None:
    with pytest.raises(ValueError, match="unknown PII kind") as info:
        scrub_pii("x", kinds=bad)
    message = str(info.value)
    assert all(kind in message for kind in PII_KINDS)
    assert (bad if isinstance(bad, str) else bad[-1]) in message
    with pytest.raises(ValueError, match="unknown PII kind"):
        scrub_many(["x"], kinds=bad)


def test_pii_kinds_constant() -> None:
    assert PII_KINDS == ("email", "phone", "ip", "credit_card", "api_key", "cn_id")
    assert set(pii.PLACEHOLDERS) == set(PII_KINDS)


ALL_TEXTS = [t for t, _, _ in POSITIVES] + NEGATIVES


@pytest.mark.parametrize("text", ALL_TEXTS)
def test_idempotent(text: str) -> None:
    once, _ = scrub_pii(text)
    assert scrub_pii(once) == (once, {})


def test_scrub_many_equals_scrub_pii() -> None:
    texts = ALL_TEXTS + ["plain English sentence.", "纯中文句子。"] * 3
    expected = [scrub_pii(t) for t in texts]
    out_texts, out_counts = scrub_many(texts)
    assert out_texts == [t for t, _ in expected]
    assert out_counts == [c for _, c in expected]
    assert scrub_many([]) == ([], [])


def test_scrub_many_counts_are_independent_dicts() -> None:
    _, counts = scrub_many(["a", "b"])
    counts[0]["email"] = 1
    assert counts[1] == {}


def test_precheck_never_skips_pii_and_output_is_fixed_point() -> None:
    """Seeded fuzz: the fast pre-check must not change any result, and output is a fixed point."""
    rng = random.Random(20240601)
    fragments = [
        "13812345678",
        "+86 ",
        "+1 ",
        "(555) ",
        "555-123-4567",
        "4111 1111 1111 1111",
        "4111111111111111",
        PUBLISHED_ID,
        "192.168.1.1",
        "1.2.3",
        ".",
        "-",
        " ",
        "@",
        "a@b.com",
        "bob",
        "我",
        "。",
        "sk-",
        "abcdefghij0123456789",
        "AKIA",
        "Bearer ",
        "api_key=",
        "x",
        "7",
        "0",
        "255",
        ":",
        "fe80",
        "ghp_",
        "xoxb-",
        "AIza",
        "_",
        "+",
        "(",
        ")",
        "010-62345678",
    ]
    alphabet = "0123456789 .-+()@:xX我a"
    everything = frozenset(PII_KINDS)
    for i in range(3000):
        if i % 2:
            text = "".join(rng.choice(fragments) for _ in range(rng.randint(1, 8)))
        else:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        result = scrub_pii(text)
        assert result == pii._scrub(text, everything), text
        assert scrub_pii(result[0]) == (result[0], {}), text


def test_doctests() -> None:
    assert doctest.testmod(pii).failed == 0


def test_column_prescreen_flags_every_text_the_per_text_precheck_flags() -> None:
    rng = random.Random(7)
    pieces = ["a", "7", "12", " ", ".", "-", "+", "@", ":", "f", "K", "\u212a", "ey", "sk-", "x"]
    pieces += ["AKIA", "token", "BEARER", "secret", "gh", "p_", "1234567", "你", "°"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(3000)]
    flags = pii._prescreen(texts)
    assert all(f for t, f in zip(texts, flags, strict=True) if pii._may_contain_pii(t))
    assert scrub_many(texts) == tuple(map(list, zip(*(scrub_pii(t) for t in texts), strict=True)))


def test_keyword_precheck_never_skips_a_key_assignment_or_bearer_token() -> None:
    """The pre-check asks for a keyword followed by ':' / '=' (or "bearer" and a blank), not
    the bare words: every text it skips must be one the full scrub leaves alone."""
    rng = random.Random(3)
    pieces = ["api", "_", "-", "key", "KEY", "Key", "secret", "client", "private", "access"]
    pieces += ["token", "Token", "x-", "bearer", "Bearer", " ", "\t", ":", "=", '"', "'", "abc"]
    pieces += ["ABC123", "1234567890", "abcdefghijklmnopqrstuvwxyz0123", ".", "/", "\u212a", "ſ"]
    everything = frozenset(PII_KINDS)
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 14))) for _ in range(20000)]
    found = 0
    for text in texts:
        scrubbed = pii._scrub(text, everything)
        found += bool(scrubbed[1])
        if not pii._may_contain_pii(text):
            assert scrubbed == (text, {}), text
    assert found > 30
    flags = pii._prescreen(texts)
    assert all(f for t, f in zip(texts, flags, strict=True) if pii._may_contain_pii(t))
