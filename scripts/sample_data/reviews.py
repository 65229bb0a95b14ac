"""Clean sentiment-review rows (``reviews.csv``), English and Chinese (``tables/reviews.json``)."""

from __future__ import annotations

from .common import arow, collect, load_tables, rng

_T = load_tables("reviews")
EN_REVIEW_INSTR = _T["EN_REVIEW_INSTR"]
ZH_REVIEW_INSTR = _T["ZH_REVIEW_INSTR"]
_EN_ITEMS = {
    "product": _T["PRODUCTS_EN"],
    "movie": _T["MOVIES_EN"],
    "restaurant": _T["RESTAURANTS_EN"],
}
_ZH_ITEMS = {
    "product": _T["ZH_PRODUCTS"],
    "movie": _T["ZH_MOVIES"],
    "restaurant": _T["ZH_RESTAURANTS"],
}


def review_row(lang, domain, label):
    """One review: an opener naming an item and a time, a detail, and an optional closer."""
    if lang == "en":
        parts_table = _T["EN_REV"][domain][label]
        pool = _EN_ITEMS[domain]
        times = _T["TIMES_EN"][domain]
        sep = " "
    else:
        parts_table = _T["ZH_REV"][domain][label]
        pool = _ZH_ITEMS[domain]
        times = _T["ZH_TIMES"][domain]
        sep = ""
    openers, details, closers = (parts_table[k] for k in ("openers", "details", "closers"))
    text = rng.choice(openers).format(x=rng.choice(pool), t=rng.choice(times))
    text = text[:1].upper() + text[1:] if lang == "en" else text
    parts = [text, rng.choice(details)]
    c = rng.choice(closers)
    if c:
        parts.append(c)
    review = sep.join(parts)
    if lang == "en":
        return arow(EN_REVIEW_INSTR, review, label, "classification", label)
    return arow(
        ZH_REVIEW_INSTR,
        review,
        _T["ZH_LABEL_WORDS"][label],
        "classification",
        label,
    )


def reviews(lang, per_class):
    rows = []
    domains = ["product", "movie", "restaurant"]
    for label in ("positive", "negative"):
        for i in range(per_class):
            d = domains[i % 3]
            rows += collect(lambda d=d, label=label: review_row(lang, d, label), 1)
    return rows
