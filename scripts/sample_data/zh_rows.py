"""Clean Simplified Chinese Alpaca rows: question answering, summaries, rewrites, headline topics.

The facts, word lists and templates are in ``tables/zh_*.json`` (and the shared country table
in ``tables/en_facts.json``).
"""

from __future__ import annotations

from .common import arow, collect, fill, from_list, load_tables, rng, template_row
from .en_rows import COUNTRIES

_FACTS = load_tables("zh_facts")
ZH_UNITS = _FACTS["ZH_UNITS"]
ZH_OPPOSITES = _FACTS["ZH_OPPOSITES"]
_ROW = _FACTS["ZH_ROW_TEMPLATES"]

_SUMM = load_tables("zh_summaries")
ZH_CITIES = _SUMM["ZH_CITIES"]
ZH_NAMES = _SUMM["ZH_NAMES"]

_REWRITE = load_tables("zh_rewrites")
_TOPICS = load_tables("zh_topics")


# ---------------------------------------------------------------------------
# Question answering from fact lists
# ---------------------------------------------------------------------------


def zh_capitals():
    cs = rng.sample(COUNTRIES, 55)
    return from_list(cs, lambda c: template_row(_ROW["capital"], country=c[2], capital=c[3]))


def zh_arith():
    def f():
        op = rng.choice(["加", "加", "减", "乘以"])
        if op == "加":
            a, b = rng.randint(2, 99), rng.randint(2, 99)
            c = a + b
        elif op == "减":
            a, b = rng.randint(10, 99), rng.randint(1, 60)
            if b > a:
                a, b = b, a
            c = a - b
        else:
            a, b = rng.randint(2, 12), rng.randint(2, 20)
            c = a * b
        return template_row(_ROW["arithmetic"], a=a, op=op, b=b, c=c)

    return collect(f, 80)


def zh_units():
    def f():
        fr, to, k = rng.choice(ZH_UNITS)
        n = rng.randint(2, 20)
        return template_row(_ROW["unit"], n=n, unit=fr, to=to, m=n * k)

    return collect(f, 30)


def zh_defs():
    return from_list(
        _FACTS["ZH_DEFS"],
        lambda d: template_row(_ROW["definition"], word=d[0], meaning=d[1]),
    )


def zh_colours():
    return from_list(
        _FACTS["ZH_COLOURS"],
        lambda c: template_row(_ROW["colour"], thing=c[0], colour=c[1]),
    )


def zh_opposites():
    return from_list(
        ZH_OPPOSITES,
        lambda p: template_row(_ROW["opposite"], word=p[0], opposite=p[1]),
    )


# ---------------------------------------------------------------------------
# Summaries of template passages
# ---------------------------------------------------------------------------


def _summary_row(template: str, **slots) -> dict:
    t = _SUMM["ZH_SUMMARY_TEMPLATES"][template]
    return arow(
        _SUMM["ZH_SUMMARY_INSTRUCTION"],
        t["passage"].format(**slots),
        t["summary"].format(**slots),
        "summarization",
    )


def _company_expansion() -> dict:
    co = rng.choice(_SUMM["ZH_CO"]) + rng.choice(_SUMM["ZH_INDUSTRY"]) + "公司"
    c1, c2 = rng.sample(ZH_CITIES, 2)
    fac = rng.choice(_SUMM["ZH_FACILITY"])
    wd = rng.choice(_SUMM["ZH_WEEKDAYS"])
    money = rng.randint(2, 50)
    jobs = rng.choice(_SUMM["ZH_SUMMARY_JOBS"])
    year = rng.randint(2025, 2030)
    person = rng.choice(ZH_NAMES)
    return _summary_row(
        "company_expansion",
        co=co, c1=c1, c2=c2, fac=fac, wd=wd, money=money, jobs=jobs, year=year, person=person,
    )  # fmt: skip


def _festival() -> dict:
    town, fest = rng.choice(_SUMM["ZH_TOWNS"]), rng.choice(_SUMM["ZH_FEST"])
    m = rng.randint(1, 12)
    d1 = rng.randint(1, 20)
    d2 = d1 + rng.randint(1, 6)
    n = rng.randint(2, 30)
    edition = rng.randint(2, 15)
    a1, a2 = rng.sample(_SUMM["ZH_ACTS"], 2)
    price = rng.choice(_SUMM["ZH_SUMMARY_PRICES"])
    return _summary_row(
        "festival",
        town=town, fest=fest, m=m, d1=d1, d2=d2, n=n, edition=edition, a1=a1, a2=a2, price=price,
    )  # fmt: skip


def _award() -> dict:
    name, city = rng.choice(ZH_NAMES), rng.choice(ZH_CITIES)
    prof, field = rng.choice(_SUMM["ZH_PROF"]), rng.choice(_SUMM["ZH_FIELD"])
    award = rng.choice(_SUMM["ZH_AWARD"])
    years = rng.randint(5, 30)
    m = rng.randint(1, 12)
    return _summary_row(
        "award", name=name, city=city, prof=prof, field=field, award=award, years=years, m=m
    )


def zh_summaries():
    rows = []
    for t in (_company_expansion, _festival, _award):
        rows += collect(t, 10)
    return rows


# ---------------------------------------------------------------------------
# Rewrites: questions, negation, digits to Chinese numerals
# ---------------------------------------------------------------------------


def zh_rewrites():
    rows = []
    subjects, preds = _REWRITE["ZH_SUBJ"], _REWRITE["ZH_PRED"]

    def q():
        s, p = rng.choice(subjects), rng.choice(preds)
        return template_row(_ROW["question"], subject=s, pred=p)

    rows += collect(q, 30)

    def neg():
        s, (a, b) = rng.choice(subjects), rng.choice(_REWRITE["ZH_NEG"])
        return template_row(_ROW["negation"], subject=s, pred=a, neg=b)

    rows += collect(neg, 25)

    def digits():
        s = rng.choice(subjects)
        n = rng.randint(3, 10)
        mw, obj = rng.choice(_REWRITE["ZH_ITEMS"])
        verb = rng.choice(_REWRITE["ZH_DIGIT_VERBS"])
        numeral = _FACTS["ZH_CN_DIGITS"][n]
        return template_row(
            _ROW["digits"], subject=s, verb=verb, n=n, mw=mw, obj=obj, numeral=numeral
        )

    rows += collect(digits, 20)
    return rows


# ---------------------------------------------------------------------------
# Headline topic classification
# ---------------------------------------------------------------------------


def zh_topics():
    slots = {
        "ZH_TEAMS": _TOPICS["ZH_TEAMS"],
        "ZH_POLICY": _TOPICS["ZH_POLICY"],
        "ZH_NAMES": ZH_NAMES,
        "ZH_CITIES": ZH_CITIES,
        "ZH_CO": _SUMM["ZH_CO"],
        "ZH_INDUSTRY": _SUMM["ZH_INDUSTRY"],
    }
    labels = _TOPICS["ZH_TOPIC_LABELS"]
    rows = []
    for label, templates in _TOPICS["ZH_HEADLINES"].items():

        def f(templates=templates, label=label):
            headline = fill(rng.choice(templates), slots) + "。"
            return arow(
                _TOPICS["ZH_TOPIC_INSTRUCTION"], headline, labels[label], "classification", label
            )

        rows += collect(f, 8)
    return rows
