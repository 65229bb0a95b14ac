"""Clean English Alpaca rows: question answering, summaries, rewrites and headline topics.

The facts, word lists and templates are in ``tables/en_*.json``; this module only decides
which random draws fill them, in a fixed order.
"""

from __future__ import annotations

from .common import arow, cap_first, collect, fill, from_list, load_tables, rng, template_row

_FACTS = load_tables("en_facts")
COUNTRIES = _FACTS["COUNTRIES"]
EN_UNITS = _FACTS["EN_UNITS"]
EN_OPPOSITES = _FACTS["EN_OPPOSITES"]
_ROW = _FACTS["EN_ROW_TEMPLATES"]

_SUMM = load_tables("en_summaries")
_SUMM_TEMPLATES = _SUMM["EN_SUMMARY_TEMPLATES"]
FEMALE = frozenset(_SUMM["FEMALE"])
EN_CITIES = _SUMM["EN_CITIES"]
MONTHS = _SUMM["MONTHS"]

_REWRITE = load_tables("en_rewrites")
EN_SUBJECTS = _REWRITE["EN_SUBJECTS"]
EN_VERBS = _REWRITE["EN_VERBS"]

_TOPICS = load_tables("en_topics")


# ---------------------------------------------------------------------------
# Question answering from fact lists
# ---------------------------------------------------------------------------


def en_capitals():
    return from_list(
        COUNTRIES,
        lambda c: template_row(_ROW["capital"], country=c[0], capital=c[1]),
    )


def en_arith():
    def f():
        op = rng.choice(["plus", "plus", "minus", "times"])
        if op == "plus":
            a, b = rng.randint(2, 99), rng.randint(2, 99)
            c = a + b
        elif op == "minus":
            a, b = rng.randint(10, 99), rng.randint(1, 60)
            if b > a:
                a, b = b, a
            c = a - b
        else:
            a, b = rng.randint(2, 12), rng.randint(2, 20)
            c = a * b
        return template_row(_ROW["arithmetic"], a=a, op=op, b=b, c=c)

    return collect(f, 110)


def en_units():
    def f():
        fr, to, k = rng.choice(EN_UNITS)
        n = rng.randint(2, 20)
        return template_row(_ROW["unit"], to=to, n=n, unit=fr, m=n * k)

    return collect(f, 45)


def en_defs():
    return from_list(
        _FACTS["EN_DEFS"],
        lambda d: template_row(_ROW["definition"], word=d[0], meaning=d[1]),
    )


def en_colours():
    return from_list(
        _FACTS["EN_COLOURS"],
        lambda c: template_row(_ROW["colour"], thing=c[0], Thing=cap_first(c[0]), colour=c[1]),
    )


def en_opposites():
    return from_list(
        EN_OPPOSITES,
        lambda p: template_row(_ROW["opposite"], word=p[0], opposite=p[1]),
    )


def en_plurals():
    return from_list(
        _FACTS["EN_PLURALS"],
        lambda p: template_row(_ROW["plural"], word=p[0], plural=p[1]),
    )


# ---------------------------------------------------------------------------
# Summaries of template passages about fictional companies, people and towns
# ---------------------------------------------------------------------------


def company() -> tuple[str, str]:
    """A fictional company name and its industry."""
    p = rng.choice(_SUMM["CO_PREFIX"])
    s, ind = rng.choice(_SUMM["CO_SUFFIX"])
    return p + s, ind


def _summary_row(template: str, **slots) -> dict:
    t = _SUMM_TEMPLATES[template]
    return arow(
        _SUMM["EN_SUMMARY_INSTRUCTION"],
        t["passage"].format(**slots),
        t["summary"].format(**slots),
        "summarization",
    )


def _company_expansion() -> dict:
    co, ind = company()
    city, city2 = rng.sample(EN_CITIES, 2)
    fac = rng.choice(_SUMM["FACILITIES"])
    jobs = rng.choice(_SUMM["EN_SUMMARY_JOBS"])
    cost = rng.randint(5, 90)
    year = rng.randint(2025, 2030)
    ceo = f"{rng.choice(_SUMM['FIRST'])} {rng.choice(_SUMM['LAST'])}"
    day = rng.choice(_SUMM["WEEKDAYS"])
    return _summary_row(
        "company_expansion",
        co=co, ind=ind, city=city, city2=city2, fac=fac, jobs=jobs, cost=cost, year=year,
        ceo=ceo, day=day,
    )  # fmt: skip


def _award() -> dict:
    first, last = rng.choice(_SUMM["FIRST"]), rng.choice(_SUMM["LAST"])
    pro = "she" if first in FEMALE else "he"
    pos = "her" if first in FEMALE else "his"
    prof, city = rng.choice(_SUMM["PROFESSIONS"]), rng.choice(EN_CITIES)
    award, topic = rng.choice(_SUMM["AWARDS"]), rng.choice(_SUMM["TOPICS"])
    years = rng.randint(4, 25)
    prize = rng.choice(_SUMM["EN_SUMMARY_PRIZES"])
    month = rng.choice(MONTHS)
    art = "an" if prof[0] in "aeiou" else "a"
    return _summary_row(
        "award",
        first=first, last=last, Pro=cap_first(pro), pos=pos, prof=prof, city=city, award=award,
        topic=topic, years=years, prize=prize, month=month, art=art,
    )  # fmt: skip


def _festival() -> dict:
    town, fest = rng.choice(_SUMM["TOWNS"]), rng.choice(_SUMM["FESTIVALS"])
    month = rng.choice(MONTHS)
    d1 = rng.randint(1, 20)
    d2 = d1 + rng.randint(1, 6)
    visitors = rng.choice(_SUMM["EN_SUMMARY_VISITORS"])
    f1, f2 = rng.sample(_SUMM["FEATURES"], 2)
    price = rng.randint(5, 40)
    return _summary_row(
        "festival",
        town=town, fest=fest, month=month, d1=d1, d2=d2, visitors=visitors, f1=f1, f2=f2,
        price=price,
    )  # fmt: skip


def _product_launch() -> dict:
    co, _ = company()
    prod = f"{rng.choice(_SUMM['PRODUCTS'])} {rng.randint(2, 9)}"
    cat, aud = rng.choice(_SUMM["CATEGORIES"]), rng.choice(_SUMM["AUDIENCES"])
    weight = rng.randint(30, 600)
    hours = rng.randint(6, 40)
    month = rng.choice(MONTHS)
    price = rng.choice(_SUMM["EN_SUMMARY_PRICES"])
    good, bad = rng.choice(_SUMM["PRAISE"]), rng.choice(_SUMM["FLAWS"])
    return _summary_row(
        "product_launch",
        co=co, prod=prod, cat=cat, aud=aud, weight=weight, hours=hours, month=month,
        price=price, good=good, bad=bad,
    )  # fmt: skip


def en_summaries():
    rows = []
    for t in (_company_expansion, _award, _festival, _product_launch):
        rows += collect(t, 12)
    return rows


# ---------------------------------------------------------------------------
# Rewrites: tense, case, questions, formal register
# ---------------------------------------------------------------------------


def en_rewrites():
    rows = []
    nouns, adjs = _REWRITE["EN_NOUNS"], _REWRITE["EN_ADJS"]

    def past():
        s = rng.choice(EN_SUBJECTS)
        pres, pst = rng.choice(EN_VERBS)
        return template_row(_ROW["past_tense"], subject=s, verb=pres, past=pst)

    rows += collect(past, 40)

    def upper():
        if rng.random() < 0.5:
            subject, verb = rng.choice(EN_SUBJECTS), rng.choice(EN_VERBS)[0]
            s = _FACTS["EN_UPPERCASE_SENTENCES"]["verb"].format(subject=subject, verb=verb)
        else:
            noun, adj = rng.choice(nouns), rng.choice(adjs)
            s = _FACTS["EN_UPPERCASE_SENTENCES"]["adjective"].format(noun=noun, adj=adj)
        return template_row(_ROW["uppercase"], sentence=s, upper=s.upper())

    rows += collect(upper, 25)

    def question():
        if rng.random() < 0.5:
            n, a = rng.choice(nouns), rng.choice(adjs)
            return template_row(_ROW["question_adjective"], noun=n, adj=a)
        nm, ab = rng.choice(_REWRITE["EN_NAMES"]), rng.choice(_REWRITE["EN_ABILITIES"])
        return template_row(_ROW["question_ability"], name=nm, ability=ab)

    rows += collect(question, 30)

    def formal():
        s = rng.choice(_REWRITE["EN_FORMAL_SUBJECTS"])
        c, full = rng.choice(_REWRITE["EN_CONTRACTIONS"])
        comp = rng.choice(_REWRITE["EN_FORMAL_COMPLEMENTS"])
        return template_row(_ROW["formal"], subject=s, short=c, full=full, rest=comp)

    rows += collect(formal, 25)
    return rows


# ---------------------------------------------------------------------------
# Headline topic classification
# ---------------------------------------------------------------------------


def en_topics():
    slots = {
        **{k: _TOPICS[k] for k in ("TEAMS", "ATHLETES", "POLICIES", "REGIONS", "TECHS")},
        "EN_CITIES": EN_CITIES,
        "MONTHS": MONTHS,
        "PRODUCTS": _SUMM["PRODUCTS"],
        "company": lambda: company()[0],
    }
    rows = []
    for label, templates in _TOPICS["EN_HEADLINES"].items():

        def f(templates=templates, label=label):
            headline = fill(rng.choice(templates), slots) + "."
            return arow(_TOPICS["EN_TOPIC_INSTRUCTION"], headline, label, "classification", label)

        rows += collect(f, 15)
    return rows
