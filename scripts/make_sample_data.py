#!/usr/bin/env python3
"""Generate the small, deterministic sample SFT corpus under ``data/sample/``.

Everything here is produced from hand-written templates and fact lists written for
this project (no third-party text).  The output is released under CC0 1.0.

Run from the repository root (or anywhere)::

    python3 scripts/make_sample_data.py

Only the Python standard library is used and all randomness comes from a single
``random.Random(1234)``, so re-running produces byte-identical files.

Files written (see ``data/README.md`` for the full description):

* ``alpaca_en.json``      JSON array of Alpaca objects (English, plus planted defects)
* ``alpaca_zh.jsonl``     JSON Lines of Alpaca objects (Simplified Chinese, plus defects)
* ``chat_sharegpt.jsonl`` JSON Lines, ShareGPT ``conversations`` and OpenAI ``messages``
* ``reviews.csv``         CSV ``instruction,input,output,task,label`` sentiment rows
* ``DEFECTS.json``        defect type -> number of planted rows
"""

from __future__ import annotations

import copy
import csv
import json
import os
import random
import string
import sys
import unicodedata
from collections import Counter, OrderedDict

SEED = 1234
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "data", "sample")

rng = random.Random(SEED)

# ---------------------------------------------------------------------------
# Fact tables (hand-written for this project)
# ---------------------------------------------------------------------------

# (English country, English capital, Chinese country, Chinese capital)
COUNTRIES = [
    ("France", "Paris", "法国", "巴黎"),
    ("Germany", "Berlin", "德国", "柏林"),
    ("Italy", "Rome", "意大利", "罗马"),
    ("Spain", "Madrid", "西班牙", "马德里"),
    ("Portugal", "Lisbon", "葡萄牙", "里斯本"),
    ("the United Kingdom", "London", "英国", "伦敦"),
    ("Ireland", "Dublin", "爱尔兰", "都柏林"),
    ("the Netherlands", "Amsterdam", "荷兰", "阿姆斯特丹"),
    ("Belgium", "Brussels", "比利时", "布鲁塞尔"),
    ("Switzerland", "Bern", "瑞士", "伯尔尼"),
    ("Austria", "Vienna", "奥地利", "维也纳"),
    ("Poland", "Warsaw", "波兰", "华沙"),
    ("the Czech Republic", "Prague", "捷克", "布拉格"),
    ("Hungary", "Budapest", "匈牙利", "布达佩斯"),
    ("Greece", "Athens", "希腊", "雅典"),
    ("Sweden", "Stockholm", "瑞典", "斯德哥尔摩"),
    ("Norway", "Oslo", "挪威", "奥斯陆"),
    ("Denmark", "Copenhagen", "丹麦", "哥本哈根"),
    ("Finland", "Helsinki", "芬兰", "赫尔辛基"),
    ("Iceland", "Reykjavik", "冰岛", "雷克雅未克"),
    ("Russia", "Moscow", "俄罗斯", "莫斯科"),
    ("Ukraine", "Kyiv", "乌克兰", "基辅"),
    ("Romania", "Bucharest", "罗马尼亚", "布加勒斯特"),
    ("Bulgaria", "Sofia", "保加利亚", "索非亚"),
    ("Serbia", "Belgrade", "塞尔维亚", "贝尔格莱德"),
    ("Croatia", "Zagreb", "克罗地亚", "萨格勒布"),
    ("Turkey", "Ankara", "土耳其", "安卡拉"),
    ("Egypt", "Cairo", "埃及", "开罗"),
    ("Kenya", "Nairobi", "肯尼亚", "内罗毕"),
    ("Nigeria", "Abuja", "尼日利亚", "阿布贾"),
    ("Ethiopia", "Addis Ababa", "埃塞俄比亚", "亚的斯亚贝巴"),
    ("Morocco", "Rabat", "摩洛哥", "拉巴特"),
    ("Ghana", "Accra", "加纳", "阿克拉"),
    ("Senegal", "Dakar", "塞内加尔", "达喀尔"),
    ("Algeria", "Algiers", "阿尔及利亚", "阿尔及尔"),
    ("China", "Beijing", "中国", "北京"),
    ("Japan", "Tokyo", "日本", "东京"),
    ("South Korea", "Seoul", "韩国", "首尔"),
    ("India", "New Delhi", "印度", "新德里"),
    ("Pakistan", "Islamabad", "巴基斯坦", "伊斯兰堡"),
    ("Bangladesh", "Dhaka", "孟加拉国", "达卡"),
    ("Nepal", "Kathmandu", "尼泊尔", "加德满都"),
    ("Mongolia", "Ulaanbaatar", "蒙古", "乌兰巴托"),
    ("Thailand", "Bangkok", "泰国", "曼谷"),
    ("Vietnam", "Hanoi", "越南", "河内"),
    ("Cambodia", "Phnom Penh", "柬埔寨", "金边"),
    ("Laos", "Vientiane", "老挝", "万象"),
    ("the Philippines", "Manila", "菲律宾", "马尼拉"),
    ("Malaysia", "Kuala Lumpur", "马来西亚", "吉隆坡"),
    ("Iran", "Tehran", "伊朗", "德黑兰"),
    ("Iraq", "Baghdad", "伊拉克", "巴格达"),
    ("Saudi Arabia", "Riyadh", "沙特阿拉伯", "利雅得"),
    ("Qatar", "Doha", "卡塔尔", "多哈"),
    ("Jordan", "Amman", "约旦", "安曼"),
    ("Lebanon", "Beirut", "黎巴嫩", "贝鲁特"),
    ("Syria", "Damascus", "叙利亚", "大马士革"),
    ("Afghanistan", "Kabul", "阿富汗", "喀布尔"),
    ("Australia", "Canberra", "澳大利亚", "堪培拉"),
    ("New Zealand", "Wellington", "新西兰", "惠灵顿"),
    ("Canada", "Ottawa", "加拿大", "渥太华"),
    ("the United States", "Washington, D.C.", "美国", "华盛顿"),
    ("Mexico", "Mexico City", "墨西哥", "墨西哥城"),
    ("Cuba", "Havana", "古巴", "哈瓦那"),
    ("Jamaica", "Kingston", "牙买加", "金斯敦"),
    ("Argentina", "Buenos Aires", "阿根廷", "布宜诺斯艾利斯"),
    ("Brazil", "Brasilia", "巴西", "巴西利亚"),
    ("Chile", "Santiago", "智利", "圣地亚哥"),
    ("Peru", "Lima", "秘鲁", "利马"),
    ("Colombia", "Bogota", "哥伦比亚", "波哥大"),
    ("Venezuela", "Caracas", "委内瑞拉", "加拉加斯"),
    ("Uruguay", "Montevideo", "乌拉圭", "蒙得维的亚"),
    ("Ecuador", "Quito", "厄瓜多尔", "基多"),
]


def cap_first(s: str) -> str:
    return s[:1].upper() + s[1:]


# ---------------------------------------------------------------------------
# Global uniqueness of clean rows (so the only duplicates are the planted ones)
# ---------------------------------------------------------------------------

_SEEN: set[str] = set()


def norm(s: str) -> str:
    s = unicodedata.normalize("NFKC", s)
    return " ".join(s.lower().split())


def pair_key(prompt: str, answer: str) -> str:
    return norm(prompt) + "||" + norm(answer)


def alpaca_key(row: dict) -> str:
    return pair_key(row["instruction"] + " " + row["input"], row["output"])


def chat_key(turns: list[tuple[str, str]]) -> str:
    return " ## ".join(pair_key(u, a) for u, a in turns)


def claim(key: str) -> bool:
    if key in _SEEN:
        return False
    _SEEN.add(key)
    return True


def arow(instruction, inp, output, task=None, label=None):
    row = OrderedDict()
    row["instruction"] = instruction
    row["input"] = inp
    row["output"] = output
    if task is not None:
        row["task"] = task
    if label is not None:
        row["label"] = label
    return row


# Template rows of one family share their instruction, so two rows that differ in a single
# filler can look like near duplicates to a MinHash/Jaccard filter.  To keep the *planted*
# near duplicates the only ones, a candidate is rejected when its character 5-gram Jaccard
# similarity (after NFKC + lower-casing + whitespace folding) with an accepted row of the same
# family reaches NEAR_GUARD.
NEAR_GUARD = 0.7
_FAMILY_SHINGLES: dict[str, list[set[str]]] = {}


def shingles(text: str, k: int = 5) -> set[str]:
    t = norm(text)
    return {t[i : i + k] for i in range(max(1, len(t) - k + 1))}


def too_similar(family: str, text: str) -> bool:
    sh = shingles(text)
    for other in _FAMILY_SHINGLES.get(family, ()):
        inter = len(sh & other)
        if inter and inter / (len(sh) + len(other) - inter) >= NEAR_GUARD:
            return True
    _FAMILY_SHINGLES.setdefault(family, []).append(sh)
    return False


def collect(factory, n, max_tries=50000):
    """Call ``factory()`` until ``n`` unique, mutually dissimilar Alpaca rows are produced."""
    rows = []
    tries = 0
    while len(rows) < n:
        tries += 1
        if tries > max_tries:
            raise RuntimeError(
                f"could not produce {n} unique rows from {factory.__name__} (got {len(rows)})"
            )
        r = factory()
        key = alpaca_key(r)
        if key in _SEEN:
            continue
        if too_similar(r["instruction"], " ".join([r["instruction"], r["input"], r["output"]])):
            continue
        claim(key)
        rows.append(r)
    return rows


def from_list(items, make):
    """Turn every item of a fixed list into a row (skipping accidental duplicates)."""
    rows = []
    for it in items:
        r = make(it)
        if claim(alpaca_key(r)):
            rows.append(r)
    return rows


# ---------------------------------------------------------------------------
# English QA families
# ---------------------------------------------------------------------------


def en_capitals():
    return from_list(
        COUNTRIES,
        lambda c: arow(
            f"What is the capital of {c[0]}?", "", f"The capital of {c[0]} is {c[1]}.", "qa"
        ),
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
        return arow(f"What is {a} {op} {b}?", "", f"{a} {op} {b} is {c}.", "qa")

    return collect(f, 110)


EN_UNITS = [  # (from, to, factor)
    ("meters", "centimeters", 100),
    ("kilometers", "meters", 1000),
    ("hours", "minutes", 60),
    ("minutes", "seconds", 60),
    ("kilograms", "grams", 1000),
    ("days", "hours", 24),
    ("weeks", "days", 7),
    ("liters", "milliliters", 1000),
    ("feet", "inches", 12),
    ("yards", "feet", 3),
]


def en_units():
    def f():
        fr, to, k = rng.choice(EN_UNITS)
        n = rng.randint(2, 20)
        return arow(f"How many {to} are in {n} {fr}?", "", f"{n} {fr} is {n * k} {to}.", "qa")

    return collect(f, 45)


EN_DEFS = [
    ("library", "a place where books are kept for people to read or borrow"),
    ("bakery", "a shop where bread and cakes are made and sold"),
    ("umbrella", "an object that protects you from rain"),
    ("calendar", "a chart that shows the days, weeks and months of a year"),
    ("doctor", "a person whose job is to treat people who are ill"),
    ("bridge", "a structure that carries a road or path over a river or valley"),
    ("thermometer", "a tool that measures temperature"),
    ("island", "a piece of land surrounded by water"),
    ("recipe", "a set of instructions for cooking a dish"),
    ("kitchen", "a room where food is prepared and cooked"),
    ("passport", "an official document that allows you to travel to other countries"),
    ("pilot", "a person who flies an aircraft"),
    ("desert", "a large dry area of land with very little rain"),
    ("volcano", "a mountain that can throw out hot rock and ash"),
    ("dictionary", "a book that lists words and explains their meanings"),
    ("orchard", "a piece of land where fruit trees are grown"),
    ("harbor", "a sheltered area of water where ships can stay safely"),
    ("museum", "a building where objects of historical or artistic interest are shown"),
    ("teacher", "a person whose job is to help others learn"),
    ("garden", "an area of land where flowers, fruit or vegetables are grown"),
    ("clock", "a device that shows the time"),
    ("map", "a drawing of an area that shows where places are"),
    ("farmer", "a person who grows crops or raises animals"),
    ("glacier", "a very large mass of ice that moves slowly"),
    ("telescope", "an instrument that makes distant objects look closer"),
    ("wallet", "a small case for carrying money and cards"),
    ("ladder", "a set of steps used for climbing up or down"),
    ("forest", "a large area covered with trees"),
    ("journalist", "a person who writes news stories"),
    ("invoice", "a document that lists goods or services and the amount to be paid"),
    ("compass", "a tool that shows the direction of north"),
    ("pharmacy", "a shop where medicines are prepared and sold"),
]


def en_defs():
    return from_list(
        EN_DEFS,
        lambda d: arow(
            f'What is the meaning of the word "{d[0]}"?',
            "",
            f'The word "{d[0]}" means {d[1]}.',
            "qa",
        ),
    )


EN_COLOURS = [
    ("grass", "green"),
    ("snow", "white"),
    ("coal", "black"),
    ("a ripe banana", "yellow"),
    ("a ripe tomato", "red"),
    ("the sky on a clear day", "blue"),
    ("a carrot", "orange"),
    ("milk", "white"),
    ("a lemon", "yellow"),
    ("milk chocolate", "brown"),
    ("a fire truck", "red"),
    ("a lime", "green"),
    ("a ripe strawberry", "red"),
    ("an eggplant", "purple"),
    ("a crow", "black"),
    ("a pumpkin", "orange"),
    ("a blueberry", "blue"),
    ("tree bark", "brown"),
    ("a flamingo", "pink"),
    ("a polar bear", "white"),
    ("a school bus in the United States", "yellow"),
    ("a cucumber", "green"),
]


def en_colours():
    return from_list(
        EN_COLOURS,
        lambda c: arow(
            f"What colour is {c[0]}?", "", f"{cap_first(c[0])} is usually {c[1]}.", "qa"
        ),
    )


EN_OPPOSITES = [
    ("hot", "cold"),
    ("big", "small"),
    ("tall", "short"),
    ("fast", "slow"),
    ("happy", "sad"),
    ("open", "closed"),
    ("early", "late"),
    ("full", "empty"),
    ("hard", "soft"),
    ("rich", "poor"),
    ("strong", "weak"),
    ("wet", "dry"),
    ("loud", "quiet"),
    ("thick", "thin"),
    ("high", "low"),
    ("push", "pull"),
    ("day", "night"),
    ("win", "lose"),
    ("buy", "sell"),
    ("cheap", "expensive"),
    ("clean", "dirty"),
    ("true", "false"),
    ("inside", "outside"),
    ("above", "below"),
    ("remember", "forget"),
    ("always", "never"),
    ("wide", "narrow"),
    ("deep", "shallow"),
    ("safe", "dangerous"),
    ("before", "after"),
    ("north", "south"),
    ("east", "west"),
    ("asleep", "awake"),
    ("entrance", "exit"),
    ("increase", "decrease"),
    ("maximum", "minimum"),
    ("smooth", "rough"),
    ("question", "answer"),
]


def en_opposites():
    return from_list(
        EN_OPPOSITES,
        lambda p: arow(
            f'What is the opposite of "{p[0]}"?', "", f'The opposite of "{p[0]}" is "{p[1]}".', "qa"
        ),
    )


EN_PLURALS = [
    ("cat", "cats"),
    ("box", "boxes"),
    ("child", "children"),
    ("mouse", "mice"),
    ("tooth", "teeth"),
    ("foot", "feet"),
    ("man", "men"),
    ("woman", "women"),
    ("person", "people"),
    ("goose", "geese"),
    ("sheep", "sheep"),
    ("leaf", "leaves"),
    ("knife", "knives"),
    ("wolf", "wolves"),
    ("city", "cities"),
    ("baby", "babies"),
    ("bus", "buses"),
    ("church", "churches"),
    ("potato", "potatoes"),
    ("tomato", "tomatoes"),
    ("hero", "heroes"),
    ("ox", "oxen"),
    ("cactus", "cacti"),
    ("crisis", "crises"),
    ("phenomenon", "phenomena"),
    ("deer", "deer"),
    ("life", "lives"),
    ("glass", "glasses"),
    ("watch", "watches"),
    ("story", "stories"),
    ("key", "keys"),
    ("toy", "toys"),
    ("brush", "brushes"),
    ("half", "halves"),
    ("shelf", "shelves"),
    ("photo", "photos"),
    ("piano", "pianos"),
]


def en_plurals():
    return from_list(
        EN_PLURALS,
        lambda p: arow(
            f'What is the plural of "{p[0]}"?', "", f'The plural of "{p[0]}" is "{p[1]}".', "qa"
        ),
    )


# ---------------------------------------------------------------------------
# English summarisation
# ---------------------------------------------------------------------------

CO_PREFIX = [
    "Blue",
    "North",
    "Silver",
    "Bright",
    "Green",
    "Sun",
    "Iron",
    "Maple",
    "River",
    "Cloud",
    "Stone",
    "Oak",
    "Harbor",
    "Summit",
    "Copper",
    "Falcon",
]
CO_SUFFIX = [
    ("peak Logistics", "logistics"),
    ("field Foods", "food"),
    ("line Energy", "energy"),
    ("gate Software", "software"),
    ("wood Furniture", "furniture"),
    ("bridge Robotics", "robotics"),
    ("stone Textiles", "textile"),
    ("wave Pharma", "pharmaceutical"),
    ("light Solar", "solar power"),
    ("point Motors", "car"),
]
EN_CITIES = [
    "Leeds",
    "Denver",
    "Porto",
    "Lyon",
    "Austin",
    "Glasgow",
    "Osaka",
    "Perth",
    "Calgary",
    "Valencia",
    "Bristol",
    "Tampa",
    "Gdansk",
    "Malmo",
    "Adelaide",
    "Geneva",
    "Turin",
    "Dresden",
]
FACILITIES = [
    "factory",
    "warehouse",
    "research centre",
    "training centre",
    "distribution hub",
    "customer service office",
    "testing laboratory",
]
FIRST = [
    "Maria",
    "David",
    "Aisha",
    "Tom",
    "Elena",
    "Samuel",
    "Priya",
    "Lucas",
    "Hannah",
    "Omar",
    "Grace",
    "Victor",
    "Nora",
    "Felix",
    "Irene",
    "Kenji",
]
LAST = [
    "Novak",
    "Brennan",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Castillo",
    "Hughes",
    "Petrov",
    "Tanaka",
    "Rossi",
    "Walsh",
    "Keller",
    "Osei",
    "Fischer",
    "Duarte",
    "Larsen",
]
FEMALE = {"Maria", "Aisha", "Elena", "Priya", "Hannah", "Grace", "Nora", "Irene"}
PROFESSIONS = [
    "chemist",
    "historian",
    "marine biologist",
    "engineer",
    "architect",
    "mathematician",
    "geologist",
    "nurse",
    "astronomer",
    "economist",
]
AWARDS = [
    "Harrow Prize",
    "Linden Medal",
    "Aster Award",
    "Copperfield Prize",
    "Wexley Medal",
    "Ridgeway Award",
]
TOPICS = [
    "coral reef recovery",
    "clean drinking water",
    "early warning systems for floods",
    "low-cost batteries",
    "ancient trade routes",
    "earthquake-resistant buildings",
    "bird migration",
    "rural health care",
    "soil erosion",
    "recycling plastics",
]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
TOWNS = [
    "Ashford",
    "Brookvale",
    "Castlemoor",
    "Dunwick",
    "Elmstead",
    "Fairhaven",
    "Glenbury",
    "Hollowell",
    "Kingsbridge",
    "Lowfield",
    "Millbrook",
    "Northcliff",
    "Oakridge",
    "Pennington",
]
FESTIVALS = [
    "music",
    "food",
    "film",
    "kite",
    "book",
    "lantern",
    "cheese",
    "jazz",
    "flower",
    "science",
]
FEATURES = [
    "live concerts",
    "cooking classes",
    "a parade",
    "fireworks",
    "a children's theatre",
    "craft workshops",
    "street performers",
    "a poetry stage",
    "a farmers' market",
    "boat races",
]
PRODUCTS = ["Nimbus", "Vega", "Pulse", "Orbit", "Atlas", "Echo", "Zephyr", "Nova", "Quill", "Drift"]
CATEGORIES = [
    "fitness tracker",
    "e-reader",
    "portable speaker",
    "smartwatch",
    "tablet",
    "wireless earbuds",
    "action camera",
    "handheld game console",
]
AUDIENCES = [
    "students",
    "runners",
    "travellers",
    "young children",
    "older adults",
    "office workers",
    "musicians",
    "hikers",
]
PRAISE = [
    "bright screen",
    "long battery life",
    "light weight",
    "clear sound",
    "simple design",
    "sturdy case",
]
FLAWS = [
    "too expensive",
    "slow to charge",
    "hard to set up",
    "a little heavy",
    "missing a headphone jack",
]


def company():
    p = rng.choice(CO_PREFIX)
    s, ind = rng.choice(CO_SUFFIX)
    return p + s, ind


def en_summaries():
    instr = "Summarize the following passage in one sentence."

    def t1():
        co, ind = company()
        city, city2 = rng.sample(EN_CITIES, 2)
        fac = rng.choice(FACILITIES)
        jobs = rng.choice([40, 60, 80, 120, 150, 200, 250, 300, 400, 500, 750])
        cost = rng.randint(5, 90)
        year = rng.randint(2025, 2030)
        ceo = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        day = rng.choice(WEEKDAYS)
        p = (
            f"{co}, a {ind} company based in {city}, announced on {day} that it will open a new "
            f"{fac} in {city2}. The project is expected to cost {cost} million dollars and create "
            f"{jobs} jobs. Chief executive {ceo} said the decision reflected strong demand from "
            f"customers. Construction is scheduled to finish in {year}."
        )
        s = f"{co} will open a new {fac} in {city2}, creating {jobs} jobs by {year}."
        return arow(instr, p, s, "summarization")

    def t2():
        first, last = rng.choice(FIRST), rng.choice(LAST)
        pro = "she" if first in FEMALE else "he"
        pos = "her" if first in FEMALE else "his"
        prof, city = rng.choice(PROFESSIONS), rng.choice(EN_CITIES)
        award, topic = rng.choice(AWARDS), rng.choice(TOPICS)
        years = rng.randint(4, 25)
        prize = rng.choice([10, 20, 25, 50, 75, 100])
        month = rng.choice(MONTHS)
        art = "an" if prof[0] in "aeiou" else "a"
        p = (
            f"{first} {last}, {art} {prof} from {city}, has won the {award} for {pos} work on {topic}. "
            f"{cap_first(pro)} spent {years} years studying the subject before publishing {pos} "
            f"findings. The prize, which includes {prize} thousand dollars, will be presented at a "
            f"ceremony in {month}. Colleagues described {last} as patient and generous."
        )
        s = f"{first} {last}, {art} {prof} from {city}, won the {award} for work on {topic}."
        return arow(instr, p, s, "summarization")

    def t3():
        town, fest = rng.choice(TOWNS), rng.choice(FESTIVALS)
        month = rng.choice(MONTHS)
        d1 = rng.randint(1, 20)
        d2 = d1 + rng.randint(1, 6)
        visitors = rng.choice([2000, 3500, 5000, 8000, 12000, 15000, 20000, 30000])
        f1, f2 = rng.sample(FEATURES, 2)
        price = rng.randint(5, 40)
        p = (
            f"The town of {town} will host its annual {fest} festival from {month} {d1} to {month} "
            f"{d2}. Organisers expect around {visitors} visitors this year. The event will feature "
            f"{f1}, {f2} and a large market. Tickets cost {price} dollars for adults and are free "
            f"for children."
        )
        s = f"{town} will hold its {fest} festival from {month} {d1} to {d2}, expecting about {visitors} visitors."
        return arow(instr, p, s, "summarization")

    def t4():
        co, _ = company()
        prod = f"{rng.choice(PRODUCTS)} {rng.randint(2, 9)}"
        cat, aud = rng.choice(CATEGORIES), rng.choice(AUDIENCES)
        weight = rng.randint(30, 600)
        hours = rng.randint(6, 40)
        month = rng.choice(MONTHS)
        price = rng.choice([49, 79, 99, 129, 149, 199, 249, 299])
        good, bad = rng.choice(PRAISE), rng.choice(FLAWS)
        p = (
            f"{co} has released the {prod}, a new {cat} aimed at {aud}. The device weighs {weight} "
            f"grams and its battery lasts up to {hours} hours. It goes on sale in {month} at a price "
            f"of {price} dollars. Early reviewers praised its {good} but said it was {bad}."
        )
        s = f"{co} released the {prod}, a {cat} for {aud} that costs {price} dollars."
        return arow(instr, p, s, "summarization")

    rows = []
    for t in (t1, t2, t3, t4):
        rows += collect(t, 12)
    return rows


# ---------------------------------------------------------------------------
# English rewriting
# ---------------------------------------------------------------------------

EN_SUBJECTS = [
    "She",
    "He",
    "My sister",
    "The teacher",
    "Our neighbour",
    "Tom",
    "Anna",
    "The old man",
    "My friend",
    "The child",
    "The manager",
    "Grandpa",
]
EN_VERBS = [  # (3rd person present, past)
    ("walks to the park", "walked to the park"),
    ("reads a book", "read a book"),
    ("writes a letter", "wrote a letter"),
    ("eats an apple", "ate an apple"),
    ("drinks a cup of tea", "drank a cup of tea"),
    ("opens the window", "opened the window"),
    ("plays the guitar", "played the guitar"),
    ("cooks dinner", "cooked dinner"),
    ("buys some bread", "bought some bread"),
    ("sings a song", "sang a song"),
    ("runs every morning", "ran every morning"),
    ("watches a film", "watched a film"),
    ("cleans the kitchen", "cleaned the kitchen"),
    ("takes the bus to work", "took the bus to work"),
    ("finds a coin on the street", "found a coin on the street"),
    ("speaks to the manager", "spoke to the manager"),
    ("draws a picture", "drew a picture"),
    ("teaches a history class", "taught a history class"),
    ("catches the early train", "caught the early train"),
    ("paints the fence", "painted the fence"),
    ("feeds the cat", "fed the cat"),
    ("washes the car", "washed the car"),
]
EN_NOUNS = [
    "door",
    "soup",
    "room",
    "car",
    "window",
    "coffee",
    "road",
    "box",
    "garden",
    "film",
    "bag",
    "lake",
    "test",
    "bread",
    "chair",
    "train",
]
EN_ADJS = [
    "open",
    "hot",
    "cold",
    "clean",
    "heavy",
    "empty",
    "long",
    "new",
    "quiet",
    "ready",
    "broken",
    "wet",
    "cheap",
    "full",
    "dark",
    "late",
]
EN_NAMES = ["Tom", "Anna", "Lucas", "Priya", "Omar", "Grace", "Felix", "Nora", "Kenji", "Elena"]
EN_ABILITIES = [
    "swim",
    "drive a car",
    "speak French",
    "play the piano",
    "ride a bike",
    "cook rice",
    "read music",
    "fix computers",
    "juggle",
    "sing",
]


def en_rewrites():
    rows = []

    def past():
        s = rng.choice(EN_SUBJECTS)
        pres, pst = rng.choice(EN_VERBS)
        return arow(
            "Rewrite the sentence in the past tense.", f"{s} {pres}.", f"{s} {pst}.", "rewrite"
        )

    rows += collect(past, 40)

    def upper():
        if rng.random() < 0.5:
            s = f"{rng.choice(EN_SUBJECTS)} {rng.choice(EN_VERBS)[0]}."
        else:
            s = f"The {rng.choice(EN_NOUNS)} is {rng.choice(EN_ADJS)}."
        return arow("Convert the following sentence to uppercase.", s, s.upper(), "rewrite")

    rows += collect(upper, 25)

    def question():
        if rng.random() < 0.5:
            n, a = rng.choice(EN_NOUNS), rng.choice(EN_ADJS)
            return arow(
                "Turn this statement into a yes/no question.",
                f"The {n} is {a}.",
                f"Is the {n} {a}?",
                "rewrite",
            )
        nm, ab = rng.choice(EN_NAMES), rng.choice(EN_ABILITIES)
        return arow(
            "Turn this statement into a yes/no question.",
            f"{nm} can {ab}.",
            f"Can {nm} {ab}?",
            "rewrite",
        )

    rows += collect(question, 30)

    contractions = [
        ("can't", "cannot"),
        ("won't", "will not"),
        ("don't", "do not"),
        ("didn't", "did not"),
        ("couldn't", "could not"),
        ("shouldn't", "should not"),
    ]
    comps = [
        "attend the meeting tomorrow",
        "sign the contract",
        "finish the report today",
        "reply to every email",
        "change the schedule",
        "approve the budget",
        "share the results yet",
        "book the conference room",
        "visit the factory in March",
        "accept late applications",
        "refund the deposit",
        "hire extra staff this summer",
        "print forty copies",
        "move the servers",
        "lend you my notes",
        "explain the delay",
        "lower the ticket prices",
        "cancel the Paris trip",
        "deliver the parcels by noon",
        "repaint the lobby",
        "renew the lease",
        "install the update on Friday",
        "join the video call",
        "pay the invoice twice",
        "open a second branch",
        "translate the manual",
        "recommend this supplier",
        "extend the deadline",
    ]

    def formal():
        s = rng.choice(["I", "We", "They", "You"])
        c, full = rng.choice(contractions)
        comp = rng.choice(comps)
        return arow(
            "Make this sentence formal by expanding contractions.",
            f"{s} {c} {comp}.",
            f"{s} {full} {comp}.",
            "rewrite",
        )

    rows += collect(formal, 25)
    return rows


# ---------------------------------------------------------------------------
# English topic classification
# ---------------------------------------------------------------------------

TEAMS = [
    "Riverside Rovers",
    "Hillcrest United",
    "Bayside Sharks",
    "Northgate Lions",
    "Eastwood Falcons",
    "Lakeside Wolves",
    "Stonebridge City",
    "Westport Rangers",
]
ATHLETES = [
    "Mia Costa",
    "Jonas Berg",
    "Leila Haddad",
    "Ryo Sato",
    "Amara Diallo",
    "Pavel Novak",
    "Sofia Ruiz",
    "Ethan Cole",
]
POLICIES = [
    "housing",
    "education",
    "healthcare",
    "immigration",
    "pension",
    "transport",
    "tax",
    "energy",
]
REGIONS = [
    "the northern province",
    "the capital region",
    "the coastal districts",
    "three southern states",
    "the river valley",
    "the western counties",
]
TECHS = ["AI", "quantum", "solar", "battery", "memory", "graphics"]


def en_topics():
    instr = "Classify this headline as sports, politics, technology or business."
    c = rng.choice
    sports = [
        lambda: (
            f"{c(TEAMS)} beat {c(TEAMS)} {rng.randint(2, 5)}-{rng.randint(0, 1)} in {c(['a thrilling', 'a rainy', 'a tense', 'a one-sided'])} {c(['cup final', 'derby', 'semi-final', 'league opener'])}"
        ),
        lambda: (
            f"{c(ATHLETES)} breaks {c(['national', 'world', 'European', 'Olympic'])} record in the {c(['100 metres', 'marathon', 'long jump', '400 metres', 'high jump'])}"
        ),
        lambda: (
            f"{c(['Knee', 'Ankle', 'Shoulder', 'Back'])} injury rules {c(ATHLETES)} out of {c(['the tennis open', 'the title decider', 'the world cup', 'the final race'])}"
        ),
        lambda: (
            f"{c(TEAMS)} {c(['sign', 'release', 'loan out'])} {c(['veteran', 'young', 'record-breaking'])} {c(['goalkeeper', 'striker', 'defender', 'coach'])}"
        ),
        lambda: (
            f"{c(ATHLETES)} wins {c(['gold', 'silver', 'bronze'])} at {c(['the swimming', 'the cycling', 'the rowing', 'the skiing'])} championships in {c(EN_CITIES)}"
        ),
        lambda: (
            f"{c(['Fans celebrate', 'Stadium erupts', 'Coach resigns', 'Captain apologises'])} after {c(TEAMS)} {c(['lose on penalties', 'win the title', 'draw 0-0', 'miss out on promotion'])}"
        ),
    ]
    politics = [
        lambda: (
            f"{c(['Parliament', 'The senate', 'Lawmakers', 'The upper house'])} {c(['votes on', 'rejects', 'passes', 'delays'])} {c(POLICIES)} bill"
        ),
        lambda: (
            f"Voters in {c(REGIONS)} {c(['head to the polls', 'choose a new governor', 'reject the referendum', 'elect a mayor'])}"
        ),
        lambda: (
            f"{c(['Senate committee', 'Cabinet', 'Ruling coalition', 'Parliamentary panel'])} {c(['debates', 'agrees on', 'splits over'])} {c(POLICIES)} reform"
        ),
        lambda: (
            f"Opposition {c(['leader', 'party', 'lawmakers'])} {c(['demand', 'call for', 'push for'])} {c(['an inquiry into', 'a vote on', 'cuts to'])} {c(POLICIES)} spending"
        ),
        lambda: (
            f"Prime minister names new {c(POLICIES)} minister after {c(['cabinet reshuffle', 'surprise resignation', 'election defeat', 'party revolt'])}"
        ),
        lambda: (
            f"{c(['President', 'Foreign minister', 'Mayor', 'Governor'])} {c(['visits', 'meets leaders in', 'signs a treaty in', 'opens an embassy in'])} {c(EN_CITIES)}"
        ),
    ]
    tech = [
        lambda: (
            f"{c(['Researchers', 'Engineers', 'A university lab', 'A startup'])} {c(['develop', 'unveil', 'test'])} {c(['faster', 'cheaper', 'greener', 'smaller'])} {c(TECHS)} chip"
        ),
        lambda: (
            f"Software update fixes {rng.randint(3, 40)} security {c(['bugs', 'holes', 'flaws'])} in {c(['popular browser', 'office suite', 'mobile operating system', 'video app'])}"
        ),
        lambda: (
            f"{c(['Startup', 'Tech giant', 'Student team'])} launches open-source tool for {c(['translating code', 'testing apps', 'editing photos', 'managing servers', 'reading scans'])}"
        ),
        lambda: (
            f"{c(PRODUCTS)} {c(['smartphone', 'laptop', 'tablet', 'smartwatch'])} gets {c(['satellite messaging', 'a foldable screen', 'a faster processor', 'a week-long battery'])}"
        ),
        lambda: (
            f"{c(['Engineers', 'Scientists', 'Students'])} build a robot that can {c(['climb stairs', 'sort recycling', 'pick fruit', 'fold laundry', 'inspect pipes'])}"
        ),
        lambda: (
            f"{c(['New', 'Open', 'Experimental'])} {c(['AI model', 'search engine', 'programming language', 'web standard'])} {c(['speeds up', 'simplifies', 'secures'])} {c(['online shopping', 'video calls', 'cloud storage', 'app development'])}"
        ),
    ]
    business = [
        lambda: (
            f"{company()[0]} shares {c(['rise', 'jump', 'fall', 'slide'])} {rng.randint(2, 25)} percent after {c(['quarterly earnings', 'profit warning', 'merger talks', 'sales report'])}"
        ),
        lambda: (
            f"{company()[0]} to {c(['cut', 'add', 'relocate'])} {c([100, 250, 400, 900, 1200])} jobs {c(['amid falling sales', 'after record profits', 'as demand grows'])}"
        ),
        lambda: (
            f"{c(['Retail sales', 'Exports', 'Car sales', 'Online sales'])} {c(['grow', 'shrink'])} {rng.randint(1, 9)} percent in {c(MONTHS)}"
        ),
        lambda: (
            f"{company()[0]} agrees to buy {company()[0]} for {rng.randint(50, 900)} million dollars"
        ),
        lambda: (
            f"Central bank {c(['holds', 'raises', 'cuts'])} interest rates {c(['to fight inflation', 'as growth slows', 'for a third month', 'despite weak jobs data'])}"
        ),
        lambda: (
            f"{c(['Oil', 'Coffee', 'Copper', 'Wheat'])} prices {c(['hit a five-year high', 'drop sharply', 'stabilise'])} as {c(['supply tightens', 'demand weakens', 'traders wait'])}"
        ),
    ]
    rows = []
    for label, fams in (
        ("sports", sports),
        ("politics", politics),
        ("technology", tech),
        ("business", business),
    ):

        def f(fams=fams, label=label):
            return arow(instr, rng.choice(fams)() + ".", label, "classification", label)

        rows += collect(f, 15)
    return rows


# ---------------------------------------------------------------------------
# Chinese families
# ---------------------------------------------------------------------------

ZH_CN_DIGITS = "零一二三四五六七八九十"


def zh_capitals():
    cs = rng.sample(COUNTRIES, 55)
    return from_list(
        cs, lambda c: arow(f"{c[2]}的首都是哪里？", "", f"{c[2]}的首都是{c[3]}。", "qa")
    )


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
        return arow(f"{a}{op}{b}等于多少？", "", f"{a}{op}{b}等于{c}。", "qa")

    return collect(f, 80)


ZH_UNITS = [
    ("米", "厘米", 100),
    ("千米", "米", 1000),
    ("小时", "分钟", 60),
    ("分钟", "秒", 60),
    ("千克", "克", 1000),
    ("天", "小时", 24),
    ("周", "天", 7),
    ("升", "毫升", 1000),
]


def zh_units():
    def f():
        fr, to, k = rng.choice(ZH_UNITS)
        n = rng.randint(2, 20)
        return arow(f"{n}{fr}等于多少{to}？", "", f"{n}{fr}等于{n * k}{to}。", "qa")

    return collect(f, 30)


ZH_DEFS = [
    ("图书馆", "收藏书籍并供人阅读和借阅的地方"),
    ("面包店", "制作和出售面包、蛋糕的商店"),
    ("雨伞", "用来遮雨的用具"),
    ("日历", "记录一年中日期、星期和月份的表"),
    ("医生", "以治疗病人为职业的人"),
    ("桥", "架在河流或山谷上方供人和车辆通过的建筑"),
    ("温度计", "测量温度的仪器"),
    ("岛屿", "四面被水包围的陆地"),
    ("菜谱", "介绍菜肴做法的说明"),
    ("厨房", "准备和烹饪食物的房间"),
    ("护照", "出国旅行时使用的官方证件"),
    ("飞行员", "驾驶飞机的人"),
    ("沙漠", "雨水很少、非常干燥的大片土地"),
    ("火山", "能喷出岩浆和火山灰的山"),
    ("词典", "收录词语并解释其意思的书"),
    ("博物馆", "收藏和展示历史文物或艺术品的场所"),
    ("农民", "种植庄稼或饲养牲畜的人"),
    ("望远镜", "使远处物体看起来更近的仪器"),
    ("钱包", "装钱和卡片的小袋子"),
    ("森林", "被大片树木覆盖的地方"),
    ("指南针", "指示方向的工具"),
    ("药店", "出售药品的商店"),
]


def zh_defs():
    return from_list(
        ZH_DEFS, lambda d: arow(f"“{d[0]}”是什么意思？", "", f"“{d[0]}”的意思是{d[1]}。", "qa")
    )


ZH_COLOURS = [
    ("草", "绿色"),
    ("雪", "白色"),
    ("煤", "黑色"),
    ("成熟的香蕉", "黄色"),
    ("成熟的西红柿", "红色"),
    ("晴朗的天空", "蓝色"),
    ("胡萝卜", "橙色"),
    ("牛奶", "白色"),
    ("柠檬", "黄色"),
    ("巧克力", "棕色"),
    ("消防车", "红色"),
    ("茄子", "紫色"),
    ("乌鸦", "黑色"),
    ("草莓", "红色"),
    ("大海", "蓝色"),
    ("夏天的树叶", "绿色"),
]


def zh_colours():
    return from_list(
        ZH_COLOURS, lambda c: arow(f"{c[0]}通常是什么颜色的？", "", f"{c[0]}通常是{c[1]}的。", "qa")
    )


ZH_OPPOSITES = [
    ("大", "小"),
    ("高", "矮"),
    ("快", "慢"),
    ("多", "少"),
    ("长", "短"),
    ("胖", "瘦"),
    ("开", "关"),
    ("上", "下"),
    ("左", "右"),
    ("前", "后"),
    ("早", "晚"),
    ("黑", "白"),
    ("买", "卖"),
    ("哭", "笑"),
    ("进", "出"),
    ("远", "近"),
    ("新", "旧"),
    ("好", "坏"),
    ("真", "假"),
    ("干净", "肮脏"),
    ("安静", "吵闹"),
    ("容易", "困难"),
    ("成功", "失败"),
    ("开始", "结束"),
    ("美丽", "丑陋"),
    ("勇敢", "胆小"),
    ("快乐", "悲伤"),
    ("增加", "减少"),
    ("宽", "窄"),
    ("深", "浅"),
    ("轻", "重"),
]


def zh_opposites():
    return from_list(
        ZH_OPPOSITES,
        lambda p: arow(f"“{p[0]}”的反义词是什么？", "", f"“{p[0]}”的反义词是“{p[1]}”。", "qa"),
    )


ZH_CITIES = [
    "杭州",
    "成都",
    "武汉",
    "南京",
    "西安",
    "苏州",
    "青岛",
    "厦门",
    "长沙",
    "郑州",
    "大连",
    "昆明",
    "合肥",
    "宁波",
    "济南",
    "天津",
    "重庆",
    "广州",
    "深圳",
    "沈阳",
]
ZH_NAMES = [
    "王磊",
    "李娜",
    "张伟",
    "刘洋",
    "陈静",
    "杨帆",
    "赵敏",
    "黄丽",
    "周强",
    "吴昊",
    "孙悦",
    "马林",
    "郭涛",
    "林芳",
    "何斌",
    "高雪",
]
ZH_CO = [
    "星辰",
    "远航",
    "青禾",
    "恒信",
    "蓝海",
    "启明",
    "华创",
    "云帆",
    "锦程",
    "瑞丰",
    "天越",
    "金石",
]
ZH_INDUSTRY = ["物流", "食品", "新能源", "软件", "家具", "机器人", "纺织", "医药"]
ZH_FACILITY = ["工厂", "仓库", "研发中心", "培训中心", "物流中心", "数据中心"]
ZH_TOWNS = ["清水镇", "桃源镇", "石桥镇", "凤凰镇", "白云镇", "青山镇", "花溪镇", "龙泉镇"]
ZH_FEST = ["音乐", "美食", "风筝", "读书", "灯笼", "茶文化", "桂花", "电影"]
ZH_ACTS = [
    "露天音乐会",
    "烹饪课",
    "花车巡游",
    "烟花表演",
    "儿童剧",
    "手工作坊",
    "龙舟比赛",
    "诗歌朗诵",
]
ZH_PROF = ["化学家", "历史学家", "工程师", "建筑师", "数学家", "地质学家", "天文学家", "经济学家"]
ZH_FIELD = [
    "珊瑚礁保护",
    "饮用水净化",
    "洪水预警",
    "低成本电池",
    "古代商路",
    "抗震建筑",
    "候鸟迁徙",
    "塑料回收",
]
ZH_AWARD = ["青松奖", "明德奖", "星光科学奖", "长河奖", "启航奖"]


def zh_summaries():
    instr = "用一句话概括下面这段文字。"

    def z1():
        co = rng.choice(ZH_CO) + rng.choice(ZH_INDUSTRY) + "公司"
        c1, c2 = rng.sample(ZH_CITIES, 2)
        fac = rng.choice(ZH_FACILITY)
        wd = rng.choice(["周一", "周二", "周三", "周四", "周五"])
        money = rng.randint(2, 50)
        jobs = rng.choice([80, 120, 200, 300, 500, 800, 1000, 1500])
        year = rng.randint(2025, 2030)
        person = rng.choice(ZH_NAMES)
        p = (
            f"{co}是一家总部位于{c1}的企业。该公司{wd}宣布，将在{c2}新建一座{fac}。项目预计投资{money}亿元，"
            f"可创造{jobs}个就业岗位。公司负责人{person}表示，工程将于{year}年完工。"
        )
        s = f"{co}将在{c2}新建{fac}，预计创造{jobs}个岗位，{year}年完工。"
        return arow(instr, p, s, "summarization")

    def z2():
        town, fest = rng.choice(ZH_TOWNS), rng.choice(ZH_FEST)
        m = rng.randint(1, 12)
        d1 = rng.randint(1, 20)
        d2 = d1 + rng.randint(1, 6)
        n = rng.randint(2, 30)
        edition = rng.randint(2, 15)
        a1, a2 = rng.sample(ZH_ACTS, 2)
        price = rng.choice([20, 30, 50, 60, 80, 100])
        p = (
            f"{town}将于{m}月{d1}日至{d2}日举办第{edition}届{fest}节。主办方预计今年将吸引约{n}万名游客。"
            f"活动包括{a1}、{a2}和美食市集。成人门票{price}元，儿童免费。"
        )
        s = f"{town}将于{m}月{d1}日至{d2}日举办{fest}节，预计吸引约{n}万名游客。"
        return arow(instr, p, s, "summarization")

    def z3():
        name, city = rng.choice(ZH_NAMES), rng.choice(ZH_CITIES)
        prof, field, award = rng.choice(ZH_PROF), rng.choice(ZH_FIELD), rng.choice(ZH_AWARD)
        years = rng.randint(5, 30)
        m = rng.randint(1, 12)
        p = (
            f"{name}是来自{city}的一名{prof}。近日，{name}凭借在{field}方面的研究获得了{award}。"
            f"{name}在这一领域已经工作了{years}年。颁奖典礼将于{m}月举行。"
        )
        s = f"来自{city}的{prof}{name}因{field}研究获得{award}。"
        return arow(instr, p, s, "summarization")

    rows = []
    for t in (z1, z2, z3):
        rows += collect(t, 10)
    return rows


ZH_SUBJ = [
    "我哥哥",
    "她",
    "他",
    "李老师",
    "我的同学",
    "小明",
    "王阿姨",
    "这个孩子",
    "我们班长",
    "张医生",
    "我爸爸",
    "小红",
]
ZH_PRED = [
    "喜欢喝咖啡",
    "会说英语",
    "每天早上跑步",
    "住在北京",
    "明天去上海",
    "正在看书",
    "养了一只猫",
    "已经吃过午饭了",
    "会弹钢琴",
    "周末去爬山",
    "喜欢画画",
    "在图书馆工作",
]
ZH_NEG = [  # (affirmative predicate, negative predicate)
    ("是工程师", "不是工程师"),
    ("是学生", "不是学生"),
    ("是医生", "不是医生"),
    ("会游泳", "不会游泳"),
    ("会开车", "不会开车"),
    ("会做饭", "不会做饭"),
    ("喜欢吃辣", "不喜欢吃辣"),
    ("喜欢下雨天", "不喜欢下雨天"),
    ("喜欢看电影", "不喜欢看电影"),
    ("想去旅行", "不想去旅行"),
    ("能来开会", "不能来开会"),
    ("认识这个人", "不认识这个人"),
]
ZH_ITEMS = [
    ("本", "书"),
    ("个", "苹果"),
    ("支", "铅笔"),
    ("张", "纸"),
    ("只", "小猫"),
    ("杯", "咖啡"),
    ("把", "椅子"),
    ("件", "衬衫"),
    ("双", "鞋"),
    ("朵", "花"),
]


def zh_rewrites():
    rows = []

    def q():
        s, p = rng.choice(ZH_SUBJ), rng.choice(ZH_PRED)
        return arow("把下面的句子改写成疑问句。", f"{s}{p}。", f"{s}{p}吗？", "rewrite")

    rows += collect(q, 30)

    def neg():
        s, (a, b) = rng.choice(ZH_SUBJ), rng.choice(ZH_NEG)
        return arow("把下面的句子改写成否定句。", f"{s}{a}。", f"{s}{b}。", "rewrite")

    rows += collect(neg, 25)

    def digits():
        s = rng.choice(ZH_SUBJ)
        n = rng.randint(3, 10)
        mw, obj = rng.choice(ZH_ITEMS)
        verb = rng.choice(["买了", "有", "借了", "拿了"])
        return arow(
            "把下面句子中的阿拉伯数字改写成汉字。",
            f"{s}{verb}{n}{mw}{obj}。",
            f"{s}{verb}{ZH_CN_DIGITS[n]}{mw}{obj}。",
            "rewrite",
        )

    rows += collect(digits, 20)
    return rows


ZH_TOPIC_LABELS = {"sports": "体育", "politics": "政治", "technology": "科技", "business": "财经"}


def zh_topics():
    instr = "判断新闻标题的类别（体育、政治、科技、财经）。"
    c = rng.choice
    teams = ["江城队", "海港队", "山城队", "北方狼队", "东湖队", "星火队"]
    policy = ["住房", "教育", "医疗", "交通", "养老", "环保"]
    fams = {
        "sports": [
            lambda: (
                f"{c(teams)}{c(['客场', '主场', '加时赛中'])}以{rng.randint(2, 5)}比{rng.randint(0, 1)}{c(['战胜', '击败', '逆转'])}{c(teams)}"
            ),
            lambda: (
                f"{c(ZH_NAMES)}{c(['打破', '刷新', '追平'])}{c(['全国', '亚洲', '世界'])}{c(['百米', '跳远', '马拉松', '跳高'])}纪录"
            ),
            lambda: (
                f"{c(ZH_NAMES)}在{c(ZH_CITIES)}举行的{c(['游泳', '自行车', '赛艇', '滑雪'])}锦标赛上夺得{c(['金牌', '银牌', '铜牌'])}"
            ),
            lambda: (
                f"{c(['膝伤', '脚踝扭伤', '肩伤'])}导致{c(ZH_NAMES)}缺席{c(['全运会', '亚洲杯', '总决赛'])}"
            ),
            lambda: (
                f"{c(teams)}{c(['宣布签下', '正式解约', '租借'])}{c(['主力门将', '外援前锋', '年轻后卫', '新任主教练'])}"
            ),
        ],
        "politics": [
            lambda: (
                f"{c(['人大常委会', '立法会', '市人大'])}{c(['审议', '通过', '修订'])}{c(policy)}法草案"
            ),
            lambda: (
                f"{c(['外交部', '国务院', '市政府', '省政府'])}{c(['发布', '出台', '解读'])}{c(policy)}{c(['新政策', '改革方案', '管理办法'])}"
            ),
            lambda: (
                f"两国{c(['领导人', '外长', '代表团'])}就{c(['边境', '气候', '安全', '文化交流'])}问题{c(['举行会谈', '达成共识', '签署协议'])}"
            ),
            lambda: (
                f"{c(ZH_CITIES)}{c(['举行', '启动', '完成'])}{c(['基层选举', '人大代表换届', '政务公开评议'])}"
            ),
            lambda: (
                f"{c(['总理', '外长', '省长'])}访问{c(['欧洲', '非洲', '东南亚', '南美'])}{c(['三国', '四国', '多国'])}"
            ),
        ],
        "technology": [
            lambda: (
                f"{c(['研究团队', '高校实验室', '初创公司'])}{c(['研制出', '发布', '测试'])}{c(['更快的', '更省电的', '更便宜的'])}{c(['人工智能', '量子', '存储', '图形'])}芯片"
            ),
            lambda: (
                f"{c(['新版操作系统', '浏览器更新', '办公软件补丁'])}修复{rng.randint(3, 40)}个{c(['安全漏洞', '严重缺陷', '兼容问题'])}"
            ),
            lambda: (
                f"{c(['工程师', '科学家', '大学生'])}研发出能{c(['爬楼梯', '分拣垃圾', '采摘水果', '叠衣服', '检查管道'])}的机器人"
            ),
            lambda: (
                f"{c(['国产', '新款', '折叠屏'])}{c(['手机', '平板电脑', '智能手表'])}{c(['支持卫星通信', '续航长达一周', '搭载新处理器'])}"
            ),
            lambda: (
                f"{c(['开源', '新一代', '实验性'])}{c(['大模型', '编程语言', '搜索引擎'])}{c(['提升', '简化', '加速'])}{c(['软件开发', '视频会议', '云存储'])}"
            ),
        ],
        "business": [
            lambda: (
                f"{c(ZH_CO)}集团股价{c(['上涨', '下跌', '大涨'])}{rng.randint(2, 25)}%，{c(['季度利润超预期', '发布盈利预警', '传出并购消息'])}"
            ),
            lambda: (
                f"{c(['三', '四', '五', '六', '七', '八'])}月份{c(['社会消费品零售总额', '工业增加值', '出口额', '汽车销量'])}同比{c(['增长', '下降'])}{rng.randint(1, 9)}%"
            ),
            lambda: (
                f"{c(ZH_CO)}公司以{rng.randint(5, 90)}亿元{c(['收购', '入股', '控股'])}{c(ZH_CO)}{c(ZH_INDUSTRY)}"
            ),
            lambda: (
                f"央行{c(['下调', '上调', '维持'])}{c(['贷款利率', '存款准备金率', '基准利率'])}{c(['以稳定经济', '应对通胀', '支持小微企业'])}"
            ),
            lambda: (
                f"{c(['原油', '铜', '大豆', '咖啡'])}价格{c(['创五年新高', '大幅回落', '趋于稳定'])}，{c(['供应偏紧', '需求疲软', '市场观望'])}"
            ),
        ],
    }
    rows = []
    for label, fs in fams.items():

        def f(fs=fs, label=label):
            return arow(
                instr, rng.choice(fs)() + "。", ZH_TOPIC_LABELS[label], "classification", label
            )

        rows += collect(f, 8)
    return rows


# ---------------------------------------------------------------------------
# Reviews (CSV)
# ---------------------------------------------------------------------------

EN_REVIEW_INSTR = "Classify the sentiment of the review as positive or negative."
ZH_REVIEW_INSTR = "判断下面评论的情感是正面还是负面。"

PRODUCTS_EN = [
    "blender",
    "desk lamp",
    "coffee maker",
    "keyboard",
    "water bottle",
    "backpack",
    "vacuum cleaner",
    "phone case",
    "toaster",
    "rice cooker",
    "office chair",
    "hair dryer",
]
MOVIES_EN = [
    "The Silent Harbor",
    "Paper Kingdoms",
    "Last Train to Avalon",
    "Glass Orchard",
    "The Winter Clockmaker",
    "Neon Tides",
    "A House of Lanterns",
    "Midnight Cartographers",
]
RESTAURANTS_EN = [
    "Rosa's Kitchen",
    "The Copper Pot",
    "Golden Lotus",
    "Blue Fig Bistro",
    "Harbor Grill",
    "Little Saigon Cafe",
    "Olive & Thyme",
    "The Rusty Spoon",
]
TIMES_EN = {
    "product": [
        "last week",
        "last month",
        "two weeks ago",
        "in the spring",
        "for my birthday",
        "on sale",
    ],
    "movie": [
        "last week",
        "on Friday night",
        "with my family",
        "at the cinema",
        "on a rainy Sunday",
    ],
    "restaurant": [
        "last week",
        "on Friday night",
        "with my family",
        "for my birthday",
        "on Saturday",
    ],
}

EN_REV = {
    ("product", "positive"): (
        [
            "I bought this {x} {t} and it works perfectly.",
            "This {x} is the best purchase I have made this year.",
            "The {x} arrived quickly and was easy to set up.",
            "I am really happy with this {x}.",
            "My new {x} feels solid and well made.",
        ],
        [
            "It is quiet, fast and looks great in my home.",
            "The quality is excellent for the price.",
            "Everything about it feels well designed.",
            "It does exactly what it promises.",
            "Even after daily use it still works like new.",
        ],
        ["Highly recommended!", "I would buy it again.", "Five stars from me.", "Great value.", ""],
    ),
    ("product", "negative"): (
        [
            "I bought this {x} {t} and it stopped working after a few days.",
            "This {x} is the worst purchase I have made this year.",
            "The {x} arrived with a cracked part and missing screws.",
            "I am very disappointed with this {x}.",
            "My new {x} feels cheap and flimsy.",
        ],
        [
            "It is loud, slow and the buttons keep sticking.",
            "The quality is terrible for the price.",
            "The instructions were confusing and useless.",
            "It does not do what the description promises.",
            "Customer support never replied to my complaint.",
        ],
        ["I want a refund.", "Do not buy it.", "One star.", "Total waste of money.", ""],
    ),
    ("movie", "positive"): (
        [
            "I watched {x} {t} and loved every minute.",
            "{x} is a beautiful and moving film.",
            "{x} was much better than I expected.",
            "I saw {x} with friends and we all enjoyed it.",
        ],
        [
            "The acting is superb and the story kept me guessing.",
            "The music and photography are stunning.",
            "The ending made the whole audience clap.",
            "The characters feel real and the dialogue is sharp.",
            "It is funny, warm and full of surprises.",
        ],
        ["A must-see.", "I will watch it again.", "One of the best films this year.", ""],
    ),
    ("movie", "negative"): (
        [
            "I watched {x} {t} and regretted it.",
            "{x} is a dull and confusing film.",
            "{x} was much worse than I expected.",
            "I saw {x} with friends and we all left bored.",
        ],
        [
            "The acting is wooden and the plot makes no sense.",
            "The music is too loud and the scenes drag on.",
            "The ending was so bad that people laughed at it.",
            "The characters are flat and the jokes fall flat too.",
            "It is far too long and nothing really happens.",
        ],
        ["Skip this one.", "I want those two hours back.", "One of the worst films this year.", ""],
    ),
    ("restaurant", "positive"): (
        [
            "We had dinner at {x} {t} and it was wonderful.",
            "{x} serves the best food in town.",
            "Lunch at {x} was a real treat.",
            "I finally tried {x} and it did not disappoint.",
        ],
        [
            "The staff were friendly and the dishes came out hot and fresh.",
            "The portions are generous and the prices are fair.",
            "The dessert was the highlight of the evening.",
            "Every dish was full of flavour.",
            "The room was cosy and the service was quick.",
        ],
        ["We will definitely come back.", "Highly recommended.", "Worth every penny.", ""],
    ),
    ("restaurant", "negative"): (
        [
            "We had dinner at {x} {t} and it was awful.",
            "{x} serves the worst food in town.",
            "Lunch at {x} was a real disappointment.",
            "I finally tried {x} and it was a letdown.",
        ],
        [
            "The staff were rude and the dishes came out cold.",
            "The portions are tiny and the prices are far too high.",
            "We waited an hour for our food.",
            "Every dish was bland and greasy.",
            "The room was dirty and noisy.",
        ],
        ["We will never come back.", "Avoid this place.", "Not worth the money.", ""],
    ),
}

ZH_PRODUCTS = [
    "电饭煲",
    "吹风机",
    "蓝牙耳机",
    "台灯",
    "保温杯",
    "双肩包",
    "扫地机器人",
    "电动牙刷",
    "键盘",
    "空气炸锅",
]
ZH_MOVIES = [
    "《远山的回声》",
    "《纸上王国》",
    "《最后一班列车》",
    "《玻璃果园》",
    "《冬日钟表匠》",
    "《霓虹潮汐》",
]
ZH_RESTAURANTS = ["老街面馆", "川味小厨", "金莲餐厅", "海港烧烤", "小巷饺子馆", "青竹茶餐厅"]
ZH_TIMES = {
    "product": ["上周", "上个月", "前几天", "双十一", "国庆节"],
    "movie": ["上周", "前几天", "周末", "昨天晚上"],
    "restaurant": ["上周", "前几天", "周末", "昨天晚上"],
}

ZH_REV = {
    ("product", "positive"): (
        [
            "{t}买的这款{x}非常好用。",
            "这个{x}是我今年买过最满意的东西。",
            "{x}收到后很快就装好了，用起来很顺手。",
            "对这个{x}非常满意。",
        ],
        [
            "做工精细，声音也很小。",
            "质量很好，价格也实惠。",
            "外观好看，功能齐全。",
            "用了一个月依然像新的一样。",
        ],
        ["强烈推荐！", "还会回购。", "五星好评。", ""],
    ),
    ("product", "negative"): (
        [
            "{t}买的这款{x}用了几天就坏了。",
            "这个{x}是我今年买过最失望的东西。",
            "{x}收到时外壳就裂了，还少了配件。",
            "对这个{x}非常不满意。",
        ],
        [
            "做工粗糙，噪音特别大。",
            "质量很差，完全不值这个价。",
            "说明书写得乱七八糟。",
            "客服一直不回复。",
        ],
        ["不推荐购买。", "要求退款。", "差评。", ""],
    ),
    ("movie", "positive"): (
        ["{t}看了{x}，非常感人。", "{x}是一部很精彩的电影。", "{x}比我想象的好看多了。"],
        [
            "演员演技出色，剧情扣人心弦。",
            "音乐和画面都很美。",
            "结局让全场观众都鼓起了掌。",
            "人物真实，台词也很有意思。",
        ],
        ["值得一看。", "还想再看一遍。", "今年最好看的电影之一。", ""],
    ),
    ("movie", "negative"): (
        ["{t}看了{x}，非常失望。", "{x}是一部很无聊的电影。", "{x}比我想象的难看多了。"],
        [
            "演技生硬，剧情毫无逻辑。",
            "配乐太吵，节奏拖沓。",
            "结局烂得让人发笑。",
            "人物单薄，笑点也很尴尬。",
        ],
        ["不建议去看。", "浪费了两个小时。", "今年最难看的电影之一。", ""],
    ),
    ("restaurant", "positive"): (
        [
            "{t}在{x}吃了晚饭，体验很好。",
            "{x}的菜是这一带最好吃的。",
            "终于去了{x}，果然没有失望。",
        ],
        [
            "服务员很热情，菜上得又快又热。",
            "分量很足，价格也公道。",
            "甜点是当晚的亮点。",
            "每道菜都很有味道。",
        ],
        ["下次还会再来。", "强烈推荐。", "物超所值。", ""],
    ),
    ("restaurant", "negative"): (
        [
            "{t}在{x}吃了晚饭，体验很差。",
            "{x}的菜是这一带最难吃的。",
            "终于去了{x}，结果非常失望。",
        ],
        [
            "服务员态度恶劣，菜上来都是凉的。",
            "分量很少，价格还特别贵。",
            "我们等了一个小时才上菜。",
            "每道菜都又淡又油。",
        ],
        ["再也不会来了。", "大家避雷。", "根本不值这个价。", ""],
    ),
}


def review_row(lang, domain, label):
    if lang == "en":
        openers, details, closers = EN_REV[(domain, label)]
        pool = {"product": PRODUCTS_EN, "movie": MOVIES_EN, "restaurant": RESTAURANTS_EN}[domain]
        times = TIMES_EN[domain]
        sep = " "
    else:
        openers, details, closers = ZH_REV[(domain, label)]
        pool = {"product": ZH_PRODUCTS, "movie": ZH_MOVIES, "restaurant": ZH_RESTAURANTS}[domain]
        times = ZH_TIMES[domain]
        sep = ""
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
        {"positive": "正面", "negative": "负面"}[label],
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


# ---------------------------------------------------------------------------
# Chat conversations
# ---------------------------------------------------------------------------

EN_SYSTEMS = [
    "You are a helpful assistant.",
    "You are a concise assistant. Answer in one sentence.",
    "You are a friendly tutor who gives short, correct answers.",
]
ZH_SYSTEMS = ["你是一个乐于助人的助手。", "你是一个简洁的助手，请用一句话回答。"]


def chat_single_en():
    k = rng.randrange(5)
    if k == 0:
        c = rng.choice(COUNTRIES)
        return [
            (f"Can you tell me the capital of {c[0]}?", f"Sure! The capital of {c[0]} is {c[1]}.")
        ]
    if k == 1:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return [(f"Could you add {a} and {b} for me?", f"Sure! {a} plus {b} equals {a + b}.")]
    if k == 2:
        fr, to, f = rng.choice(EN_UNITS)
        n = rng.randint(2, 30)
        return [(f"Please convert {n} {fr} into {to}.", f"Sure! {n} {fr} equals {n * f} {to}.")]
    if k == 3:
        w, o = rng.choice(EN_OPPOSITES)
        return [
            (
                f'Give me a word that means the opposite of "{w}".',
                f'Sure! The opposite of "{w}" is "{o}".',
            )
        ]
    s = rng.choice(EN_SUBJECTS)
    pres, pst = rng.choice(EN_VERBS)
    return [(f"Put this sentence into the past tense: {s} {pres}.", f"Sure! {s} {pst}.")]


def chat_single_zh():
    k = rng.randrange(4)
    if k == 0:
        c = rng.choice(COUNTRIES)
        return [(f"请告诉我{c[2]}的首都是哪座城市。", f"好的！{c[2]}的首都是{c[3]}。")]
    if k == 1:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return [(f"帮我算一下{a}加{b}。", f"好的！{a}加{b}等于{a + b}。")]
    if k == 2:
        fr, to, f = rng.choice(ZH_UNITS)
        n = rng.randint(2, 30)
        return [(f"请把{n}{fr}换算成{to}。", f"好的！{n}{fr}等于{n * f}{to}。")]
    w, o = rng.choice(ZH_OPPOSITES)
    return [(f"请说出“{w}”的反义词。", f"好的！“{w}”的反义词是“{o}”。")]


def chat_multi_en():
    k = rng.randrange(4)
    if k == 0:
        c1, c2 = rng.sample(COUNTRIES, 2)
        turns = [
            (f"What is the capital of {c1[0]}?", f"The capital of {c1[0]} is {c1[1]}."),
            (f"And what about {c2[0]}?", f"The capital of {c2[0]} is {c2[1]}."),
        ]
        if rng.random() < 0.5:
            turns.append(
                (
                    "Which city did I ask about first?",
                    f"You first asked about {c1[1]}, the capital of {c1[0]}.",
                )
            )
        return turns
    if k == 1:
        a, b, d = rng.randint(2, 50), rng.randint(2, 50), rng.randint(2, 9)
        turns = [
            (f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."),
            (f"Now multiply that by {d}.", f"{a + b} times {d} is {(a + b) * d}."),
        ]
        if rng.random() < 0.5:
            e = rng.randint(1, 50)
            turns.append(
                (
                    f"And subtract {e} from the result.",
                    f"{(a + b) * d} minus {e} is {(a + b) * d - e}.",
                )
            )
        return turns
    if k == 2:
        n = rng.randint(2, 12)
        turns = [
            (f"How many minutes are in {n} hours?", f"{n} hours is {n * 60} minutes."),
            ("And how many seconds is that?", f"{n * 60} minutes is {n * 3600} seconds."),
        ]
        if rng.random() < 0.5:
            turns.append(("Thanks!", "You're welcome!"))
        return turns
    (w1, o1), (w2, o2) = rng.sample(EN_OPPOSITES, 2)
    turns = [
        (f'What is the opposite of "{w1}"?', f'The opposite of "{w1}" is "{o1}".'),
        (f'And the opposite of "{w2}"?', f'The opposite of "{w2}" is "{o2}".'),
    ]
    if rng.random() < 0.5:
        turns.append(("Thanks for your help!", "You're welcome!"))
    return turns


def chat_multi_zh():
    k = rng.randrange(3)
    if k == 0:
        c1, c2 = rng.sample(COUNTRIES, 2)
        turns = [
            (f"{c1[2]}的首都是哪里？", f"{c1[2]}的首都是{c1[3]}。"),
            (f"那{c2[2]}呢？", f"{c2[2]}的首都是{c2[3]}。"),
        ]
        if rng.random() < 0.5:
            turns.append(("谢谢！", "不客气！"))
        return turns
    if k == 1:
        a, b, d = rng.randint(2, 50), rng.randint(2, 50), rng.randint(2, 9)
        turns = [
            (f"{a}加{b}等于多少？", f"{a}加{b}等于{a + b}。"),
            (f"再乘以{d}呢？", f"{a + b}乘以{d}等于{(a + b) * d}。"),
        ]
        if rng.random() < 0.5:
            turns.append(("谢谢！", "不客气！"))
        return turns
    n = rng.randint(2, 12)
    turns = [
        (f"{n}小时等于多少分钟？", f"{n}小时等于{n * 60}分钟。"),
        ("那等于多少秒？", f"{n * 60}分钟等于{n * 3600}秒。"),
    ]
    if rng.random() < 0.5:
        turns.append(("谢谢！", "不客气！"))
    return turns


def make_chat(turns, system=None, fmt="sharegpt"):
    if fmt == "sharegpt":
        conv = []
        if system:
            conv.append({"from": "system", "value": system})
        for u, a in turns:
            conv.append({"from": "human", "value": u})
            conv.append({"from": "gpt", "value": a})
        return {"conversations": conv}
    msgs = []
    if system:
        msgs.append({"role": "system", "content": system})
    for u, a in turns:
        msgs.append({"role": "user", "content": u})
        msgs.append({"role": "assistant", "content": a})
    return {"messages": msgs}


def chat_turns(obj):
    """(role, text) list for either chat format."""
    if "conversations" in obj:
        return obj["conversations"], "from", "value"
    return obj["messages"], "role", "content"


def collect_chats(factory, n, lang, system_p):
    out = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 20000:
            raise RuntimeError("chat generation stuck")
        turns = factory()
        key = chat_key(turns)
        if key in _SEEN or too_similar("chat", " ".join(u + " " + a for u, a in turns)):
            continue
        claim(key)
        system = None
        if rng.random() < system_p:
            system = rng.choice(EN_SYSTEMS if lang == "en" else ZH_SYSTEMS)
        fmt = "sharegpt" if rng.random() < 0.6 else "openai"
        out.append(make_chat(turns, system, fmt))
    return out


# ---------------------------------------------------------------------------
# PII generators
# ---------------------------------------------------------------------------

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


CN_ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CN_ID_CHECK = "10X98765432"


def cn_id_check(first17: str) -> str:
    return CN_ID_CHECK[sum(int(c) * w for c, w in zip(first17, CN_ID_WEIGHTS, strict=True)) % 11]


def make_cn_id():
    region = rng.choice(["110101", "310104", "440305", "330106", "510107", "420106", "320102"])
    y, m, d = rng.randint(1962, 2001), rng.randint(1, 12), rng.randint(1, 28)
    seq = f"{rng.randint(0, 999):03d}"
    first17 = f"{region}{y:04d}{m:02d}{d:02d}{seq}"
    return first17 + cn_id_check(first17), (y, m, d)


def make_cn_mobile():
    return rng.choice(["138", "139", "186", "152", "177", "135"]) + "".join(
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


# ---------------------------------------------------------------------------
# Defect helpers
# ---------------------------------------------------------------------------

FW = {c: chr(ord(c) + 0xFEE0) for c in string.ascii_letters + string.digits}
FW_PUNCT = {"?": "？", "!": "！", ",": "，", ".": "．", ":": "：", ";": "；", "(": "（", ")": "）"}


def to_fullwidth(s: str, punct=True) -> str:
    table = dict(FW)
    if punct:
        table.update(FW_PUNCT)
    return "".join(table.get(c, c) for c in s)


EN_SWAPS = [
    ("announced", "revealed"),
    ("expected", "likely"),
    ("strong", "high"),
    ("annual", "yearly"),
    ("praised", "liked"),
    ("large", "big"),
    ("really", "very"),
    ("quickly", "fast"),
    ("excellent", "great"),
    ("terrible", "awful"),
    ("friendly", "kind"),
    ("wonderful", "lovely"),
    ("disappointed", "unhappy"),
    ("superb", "great"),
    ("stunning", "gorgeous"),
    ("dull", "boring"),
    ("rude", "unfriendly"),
    ("generous", "kind"),
    ("patient", "calm"),
]
ZH_SWAPS = [
    ("宣布", "表示"),
    ("非常", "很"),
    ("预计", "估计"),
    ("企业", "公司"),
    ("近日", "最近"),
    ("举办", "举行"),
    ("约", "大约"),
    ("很好", "不错"),
    ("特别", "非常"),
    ("出色", "优秀"),
    ("失望", "不满"),
    ("热情", "友好"),
]


def swap_word(text: str, swaps):
    opts = [(a, b) for a, b in swaps if a in text]
    if not opts:
        return None
    a, b = rng.choice(opts)
    return text.replace(a, b, 1)


def near_variant(row: dict, kind: str, lang: str) -> dict:
    r = copy.deepcopy(row)
    if kind == "word_changed":
        new = swap_word(r["input"], EN_SWAPS if lang == "en" else ZH_SWAPS)
        assert new is not None
        r["input"] = new
    elif kind == "extra_punctuation":
        if lang == "en":
            r["output"] = (
                r["output"].rstrip(".") + "!!!" if rng.random() < 0.5 else r["output"] + ".."
            )
            r["instruction"] = r["instruction"].rstrip("?.") + "??"
        else:
            r["output"] = r["output"] + "！！"
            r["instruction"] = (
                r["instruction"] + "？？"
                if r["instruction"].endswith("？")
                else r["instruction"] + "。。"
            )
    elif kind == "casing":
        if rng.random() < 0.5:
            r["instruction"] = r["instruction"].upper()
        else:
            r["instruction"] = r["instruction"].lower()
            r["output"] = r["output"].lower()
        if lang == "en" and r["input"]:
            r["input"] = r["input"].lower()
    elif kind == "whitespace":
        r["instruction"] = "  " + r["instruction"].replace(" ", "   ", 2) + " \t"
        if lang == "en":
            r["output"] = r["output"].replace(" ", "  ") + "\n\n"
        else:
            r["output"] = " " + r["output"] + "  \n"
        if r["input"]:
            r["input"] = r["input"] + "   "
    elif kind == "fullwidth":
        if lang == "en":
            r["instruction"] = to_fullwidth(r["instruction"], punct=True)
            r["input"] = to_fullwidth(r["input"], punct=False)
        else:
            r["instruction"] = to_fullwidth(r["instruction"], punct=False)
            r["output"] = to_fullwidth(r["output"], punct=False)
    else:
        raise ValueError(kind)
    return r


CHAT_SWAPS = {
    "Can you tell me": "Could you tell me",
    "Could you add": "Can you add",
    "Please convert": "Kindly convert",
    "Give me a word": "Tell me a word",
    "What is": "What's",
    "请告诉我": "告诉我",
    "帮我算一下": "请帮我算一下",
    "请把": "麻烦把",
    "请说出": "说出",
}


def chat_near_variant(obj, kind):
    o = copy.deepcopy(obj)
    msgs, rk, vk = chat_turns(o)
    first_user = next(m for m in msgs if m[rk] in ("human", "user"))
    if kind == "casing":
        first_user[vk] = first_user[vk].upper()
    elif kind == "whitespace":
        first_user[vk] = "  " + first_user[vk].replace(" ", "  ") + "\n"
    elif kind == "extra_punctuation":
        first_user[vk] = first_user[vk] + "??!"
    elif kind == "word_changed":
        v = first_user[vk]
        a = next(a for a in CHAT_SWAPS if a in v)
        first_user[vk] = v.replace(a, CHAT_SWAPS[a], 1)
    return o


def html_variant(row, variant, lang):
    r = copy.deepcopy(row)
    if lang == "en":
        if variant == 0:
            if r["input"]:
                r["input"] = "<p>" + r["input"] + "</p>"
            else:
                r["output"] = "<p>" + r["output"] + "</p>"
        elif variant == 1:
            r["output"] = "<b>" + r["output"] + "</b>"
        elif variant == 2:
            tgt = "input" if r["input"] else "output"
            txt = r[tgt]
            txt = txt.replace(". ", ".<br/>") if ". " in txt else txt + "<br/>"
            r[tgt] = txt.replace(" and ", " &amp; ")
        elif variant == 3:
            tgt = "input" if r["input"] else "output"
            r[tgt] = '<div class="content"><span>' + r[tgt] + "</span></div>"
        elif variant == 4:
            r["instruction"] = r["instruction"].replace(" ", "&nbsp;", 1)
            r["output"] = "<p><i>" + r["output"] + "</i></p>"
        else:
            tgt = "input" if r["input"] else "output"
            r[tgt] = (
                r[tgt].replace('"', "&quot;") + ' <a href="https://example.com/more">Read more</a>'
            )
    else:
        if variant % 3 == 0:
            tgt = "input" if r["input"] else "output"
            r[tgt] = "<p>" + r[tgt] + "</p>"
        elif variant % 3 == 1:
            tgt = "input" if r["input"] else "output"
            r[tgt] = r[tgt].replace("。", "。<br/>", 1) + "&nbsp;"
        else:
            r["output"] = "<b>" + r["output"] + "</b>"
    return r


def insert_mid(s: str, token: str) -> str:
    """Insert ``token`` at a word boundary (or a character boundary for CJK) near the middle."""
    if not s:
        return token
    spaces = [i for i, c in enumerate(s) if c == " "]
    i = spaces[len(spaces) // 2] if spaces else max(1, len(s) // 2)
    return s[:i] + token + s[i:]


def control_variant(row, ch):
    r = copy.deepcopy(row)
    if ch == "\x00":
        r["instruction"] = r["instruction"] + "\x00"
    elif ch == "\x07":
        r["output"] = insert_mid(r["output"], "\x07")
    elif ch == "\x1b":
        tgt = "input" if r["input"] else "output"
        r[tgt] = "\x1b[31m" + r[tgt] + "\x1b[0m"
    elif ch == "\u200b":
        tgt = "input" if r["input"] else "instruction"
        s = r[tgt]
        i = max(1, len(s) // 3)
        r[tgt] = s[:i] + "\u200b" + s[i:]
    elif ch == "\r":
        r["output"] = r["output"] + "\r"
        if r["input"]:
            r["input"] = r["input"].replace(". ", ".\r\n", 1)
    return r


# ---------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------

DEFECTS = Counter()
PER_FILE = {}  # file -> Counter
SUBTYPES = Counter()
NEAR_PAIRS = []  # (kind, source row, variant row)


def canon(item) -> str:
    """Canonical serialisation used to count verbatim duplicates across files/formats."""
    if isinstance(item, str):
        return "RAW:" + item
    if "conversations" in item or "messages" in item:
        return json.dumps(item, ensure_ascii=False, sort_keys=True)
    return json.dumps(
        {k: item.get(k, "") for k in ("instruction", "input", "output", "task", "label")},
        ensure_ascii=False,
        sort_keys=True,
    )


def flat_text(item) -> str:
    if "conversations" in item or "messages" in item:
        msgs, _, vk = chat_turns(item)
        return " ".join(m[vk] for m in msgs)
    return " ".join(str(item.get(k, "")) for k in ("instruction", "input", "output"))


def jaccard5(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


def tag(fname, kind, n=1, sub=None):
    DEFECTS[kind] += n
    PER_FILE.setdefault(fname, Counter())[kind] += n
    if sub:
        SUBTYPES[f"{kind}:{sub}"] += n


class Pool:
    """Clean rows of one file; rows can be popped out to become defect rows."""

    def __init__(self, rows):
        self.rows = list(rows)
        rng.shuffle(self.rows)
        self.used = set()  # ids of rows used as duplicate sources

    def pop(self, pred=lambda r: True):
        for i, r in enumerate(self.rows):
            if id(r) not in self.used and pred(r):
                return self.rows.pop(i)
        raise RuntimeError("pool exhausted")

    def pick(self, pred=lambda r: True):
        """Choose a clean row to duplicate (it stays in the file)."""
        cands = [r for r in self.rows if id(r) not in self.used and pred(r)]
        r = rng.choice(cands)
        self.used.add(id(r))
        return r


def place(clean, extras, mid_only=()):
    """Insert ``extras`` at random positions; items in ``mid_only`` go in the middle half."""
    out = list(clean)
    for e in extras:
        out.insert(rng.randint(0, len(out)), e)
    for e in mid_only:
        n = len(out)
        out.insert(rng.randint(n // 4, 3 * n // 4), e)
    return out


def is_long(r, n=80):
    return isinstance(r.get("input"), str) and len(r["input"]) >= n


def main():
    os.makedirs(OUT_DIR, exist_ok=True)

    # ---------------- clean rows ----------------
    en_rows = (
        en_capitals()
        + en_arith()
        + en_units()
        + en_defs()
        + en_colours()
        + en_opposites()
        + en_plurals()
        + en_summaries()
        + en_rewrites()
        + en_topics()
    )
    zh_rows = (
        zh_capitals()
        + zh_arith()
        + zh_units()
        + zh_defs()
        + zh_colours()
        + zh_opposites()
        + zh_summaries()
        + zh_rewrites()
        + zh_topics()
    )
    rev_rows = reviews("en", 93) + reviews("zh", 63)
    chats_en = collect_chats(chat_single_en, 60, "en", 0.2) + collect_chats(
        chat_multi_en, 24, "en", 0.3
    )
    chats_zh = collect_chats(chat_single_zh, 40, "zh", 0.2) + collect_chats(
        chat_multi_zh, 16, "zh", 0.3
    )

    EN, ZH, CH, CSV = "alpaca_en.json", "alpaca_zh.jsonl", "chat_sharegpt.jsonl", "reviews.csv"
    en, zh, rv = Pool(en_rows), Pool(zh_rows), Pool(rev_rows)
    ch = Pool(chats_en + chats_zh)

    extra = {EN: [], ZH: [], CH: [], CSV: []}
    mid = {EN: [], ZH: [], CH: [], CSV: []}

    def is_zh_review(r):
        return r["instruction"] == ZH_REVIEW_INSTR

    def rv_lang(r):
        return "zh" if is_zh_review(r) else "en"

    # ---------------- popped-and-modified defects (content unique) ----------------
    # empty outputs
    for _ in range(6):
        r = en.pop()
        r["output"] = ""
        extra[EN].append(r)
        tag(EN, "empty_output")
    for _ in range(4):
        r = zh.pop()
        r["output"] = ""
        extra[ZH].append(r)
        tag(ZH, "empty_output")
    for lab in ("positive", "negative"):
        r = rv.pop(lambda x, lab=lab: x["label"] == lab)
        r["output"] = ""
        extra[CSV].append(r)
        tag(CSV, "empty_output")
    for _ in range(3):
        o = ch.pop()
        msgs, rk, vk = chat_turns(o)
        [m for m in msgs if m[rk] in ("gpt", "assistant")][-1][vk] = ""
        extra[CH].append(o)
        tag(CH, "empty_output")

    # empty instructions
    for i in range(3):
        r = en.pop(lambda x: bool(x["input"]))
        r["instruction"] = "" if i < 2 else "   "
        extra[EN].append(r)
        tag(EN, "empty_instruction")
    for _ in range(2):
        r = zh.pop(lambda x: bool(x["input"]))
        r["instruction"] = ""
        extra[ZH].append(r)
        tag(ZH, "empty_instruction")

    # HTML
    for v in range(12):
        extra[EN].append(html_variant(en.pop(), v % 6, "en"))
        tag(EN, "html")
    for v in range(6):
        extra[ZH].append(html_variant(zh.pop(), v, "zh"))
        tag(ZH, "html")
    for v, lab in enumerate(("positive", "negative", "positive")):
        r = rv.pop(lambda x, lab=lab: x["label"] == lab)
        extra[CSV].append(
            html_variant(r, [0, 2, 3][v], rv_lang(r))
            if rv_lang(r) == "en"
            else html_variant(r, v, "zh")
        )
        tag(CSV, "html")
    html_chat = ["<p>{}</p>", "<b>{}</b>", "{}<br/>", '<div class="reply">{}</div>']
    for t in html_chat:
        o = ch.pop()
        msgs, rk, vk = chat_turns(o)
        a = next(m for m in msgs if m[rk] in ("gpt", "assistant"))
        a[vk] = t.format(a[vk].replace(" and ", " &amp; "))
        extra[CH].append(o)
        tag(CH, "html")

    # control characters
    for c in ["\x00", "\x07", "\x1b", "\u200b", "\r", "\x00"]:
        extra[EN].append(control_variant(en.pop(), c))
        tag(EN, "control_chars", sub=repr(c))
    for c in ["\u200b", "\x07", "\r", "\x00"]:
        extra[ZH].append(control_variant(zh.pop(), c))
        tag(ZH, "control_chars", sub=repr(c))
    for c in ["\x1b", "\u200b", "\x07"]:
        o = ch.pop()
        msgs, rk, vk = chat_turns(o)
        u = next(m for m in msgs if m[rk] in ("human", "user"))
        u[vk] = ("\x1b[1m" + u[vk] + "\x1b[0m") if c == "\x1b" else insert_mid(u[vk], c)
        extra[CH].append(o)
        tag(CH, "control_chars", sub=repr(c))
    for c, lab in (("\u200b", "positive"), ("\x1b", "negative")):
        extra[CSV].append(control_variant(rv.pop(lambda x, lab=lab: x["label"] == lab), c))
        tag(CSV, "control_chars", sub=repr(c))

    # wrong types
    r = en.pop()
    o = r["output"]
    h = len(o) // 2
    r["output"] = [o[:h].strip(), o[h:].strip()]
    extra[EN].append(r)
    tag(EN, "wrong_type", sub="output_list")
    r = en.pop()
    r["instruction"] = {"text": r["instruction"]}
    extra[EN].append(r)
    tag(EN, "wrong_type", sub="instruction_dict")
    r = en.pop()
    r["output"] = None
    extra[EN].append(r)
    tag(EN, "wrong_type", sub="output_null")
    r = en.pop(lambda x: bool(x["input"]))
    r["input"] = 42
    extra[EN].append(r)
    tag(EN, "wrong_type", sub="input_number")
    r = zh.pop()
    r["output"] = True
    extra[ZH].append(r)
    tag(ZH, "wrong_type", sub="output_bool")
    r = zh.pop()
    o = r["output"]
    h = len(o) // 2
    r["output"] = [o[:h], o[h:]]
    extra[ZH].append(r)
    tag(ZH, "wrong_type", sub="output_list")

    # low alnum ratio outputs
    for o in ["!!!! ???? .... !!!!", "😀😀😀🎉🎉🎉👍👍👍", "--- *** --- *** --- ***"]:
        r = en.pop()
        r["output"] = o
        extra[EN].append(r)
        tag(EN, "low_alnum")
    r = zh.pop()
    r["output"] = "。。。！！！？？？……"
    extra[ZH].append(r)
    tag(ZH, "low_alnum")
    o = ch.pop()
    msgs, rk, vk = chat_turns(o)
    next(m for m in msgs if m[rk] in ("gpt", "assistant"))[vk] = "?!?! ... ?!?! ... (^_^)"
    extra[CH].append(o)
    tag(CH, "low_alnum")

    # ---------------- new-content defects ----------------
    # PII
    emails = [
        "anna.kowalski@example.com",
        "j.smith@example.org",
        "support-team@example.net",
        "zhang.min@example.com",
        "mark.lee88@example.org",
        "rosa.bookings@example.com",
        "tom_b@example.net",
        "chen.yu@example.cn",
    ]
    cards = [
        "4111 1111 1111 1111",
        "5555555555554444",
        "4012-8888-8888-1881",
        group4(make_card("4")),
        group4(make_card("51"), "-"),
    ]
    for c in cards:
        assert luhn_ok(c), c
    ids = [make_cn_id() for _ in range(5)]
    for i, _ in ids:
        assert cn_id_check(i[:17]) == i[17]
    ips = ["203.0.113.45", "198.51.100.7", "192.168.1.23", "192.168.0.105", "10.0.0.5"]
    summ = "Summarize the following passage in one sentence."
    past_i = "Rewrite the sentence in the past tense."
    up_i = "Convert the following sentence to uppercase."
    q_i = "Turn this statement into a yes/no question."
    ph1, ph2, ph3 = make_us_phone(0), make_us_phone(1), make_us_phone(0)
    sk, ak, gh = sk_key(), akia_key(), ghp_key()
    en_pii = [
        (
            "email",
            arow(
                summ,
                "Hi all, the quarterly review has moved to Thursday at 10 am. Please send "
                f"your slides to {emails[0]} by Wednesday.",
                "The quarterly review has moved to Thursday at 10 am and slides are due on Wednesday.",
                "summarization",
            ),
        ),
        (
            "email",
            arow(
                past_i,
                f"Elena sends the invoice to {emails[1]}.",
                f"Elena sent the invoice to {emails[1]}.",
                "rewrite",
            ),
        ),
        (
            "email",
            arow(
                "How can I contact the support team?",
                "",
                f"You can contact the support team by email at {emails[2]}.",
                "qa",
            ),
        ),
        (
            "us_phone",
            arow(q_i, f"The office number is {ph1}.", f"Is the office number {ph1}?", "rewrite"),
        ),
        (
            "us_phone",
            arow(
                summ,
                "Our store on Main Street will close early on Friday because of the parade. "
                f"If you have an order to collect, call us at {ph2} to arrange another time.",
                "The Main Street store will close early on Friday, so customers should call to rearrange order pickups.",
                "summarization",
            ),
        ),
        (
            "us_phone",
            arow(up_i, f"call me at {ph3} after six.", f"CALL ME AT {ph3} AFTER SIX.", "rewrite"),
        ),
        (
            "ipv4",
            arow(
                summ,
                f"The web server at {ips[0]} stopped responding at 2 am. The on-call engineer "
                "restarted it and service returned within ten minutes.",
                "A web server outage at 2 am was fixed by a restart within ten minutes.",
                "summarization",
            ),
        ),
        (
            "ipv4",
            arow(
                up_i,
                f"the printer uses the address {ips[1]}.",
                f"THE PRINTER USES THE ADDRESS {ips[1]}.",
                "rewrite",
            ),
        ),
        (
            "api_key",
            arow(
                summ,
                f"To call the API, set the header Authorization: Bearer {sk} and send a POST "
                "request to the items endpoint. Requests without the header are rejected.",
                "API requests need an authorization header and are sent as POST requests to the items endpoint.",
                "summarization",
            ),
        ),
        (
            "api_key",
            arow(
                summ,
                f"The deploy failed because the access key {ak} was disabled last week. The team "
                "created a new key and the deploy finished normally.",
                "The deploy failed due to a disabled access key but succeeded after a new key was created.",
                "summarization",
            ),
        ),
        (
            "api_key",
            arow(
                q_i, f"The token {gh} is still valid.", f"Is the token {gh} still valid?", "rewrite"
            ),
        ),
        (
            "credit_card",
            arow(
                summ,
                "Thank you for your order of two blue mugs. The total of 24 dollars was "
                f"charged to the card {cards[0]}. Your parcel will arrive within five days.",
                "The order of two blue mugs cost 24 dollars and will arrive within five days.",
                "summarization",
            ),
        ),
        (
            "credit_card",
            arow(
                past_i,
                f"She pays with the card {cards[1]}.",
                f"She paid with the card {cards[1]}.",
                "rewrite",
            ),
        ),
        (
            "credit_card",
            arow(
                up_i, f"my card number is {cards[2]}.", f"MY CARD NUMBER IS {cards[2]}.", "rewrite"
            ),
        ),
    ]
    for sub, r in en_pii:
        extra[EN].append(r)
        tag(EN, "pii", sub=sub)

    zsum = "用一句话概括下面这段文字。"
    m1, m2, m3, m4, m5 = (make_cn_mobile() for _ in range(5))
    zh_pii = [
        (
            "cn_mobile",
            arow(
                "把下面的句子改写成疑问句。",
                f"王阿姨的手机号是{m1}。",
                f"王阿姨的手机号是{m1}吗？",
                "rewrite",
            ),
        ),
        (
            "cn_mobile",
            arow(
                zsum,
                f"各位业主：本周六上午九点小区将进行停水检修，预计持续四个小时。如有疑问，请拨打物业电话{m2}。",
                "本周六上午小区停水检修约四小时。",
                "summarization",
            ),
        ),
        (
            "cn_mobile",
            arow(
                "把下面的句子改写成否定句。",
                f"我的电话号码是{m3}。",
                f"我的电话号码不是{m3}。",
                "rewrite",
            ),
        ),
        (
            "cn_mobile",
            arow(
                zsum,
                f"本店周末推出买一送一活动，所有饮品均参与。订餐请联系店长，手机{m4}。活动截至本月底。",
                "本店周末饮品买一送一，活动持续到本月底。",
                "summarization",
            ),
        ),
        (
            "cn_id",
            arow(
                zsum,
                f"申请人李娜，身份证号{ids[0][0]}，申请办理居住证。材料已经齐全，预计十个工作日内办结。",
                "李娜的居住证申请材料齐全，预计十个工作日内办结。",
                "summarization",
            ),
        ),
        (
            "cn_id",
            arow(
                "把下面的句子改写成疑问句。",
                f"他的身份证号码是{ids[1][0]}。",
                f"他的身份证号码是{ids[1][0]}吗？",
                "rewrite",
            ),
        ),
        (
            "cn_id",
            arow(
                zsum,
                f"乘客张伟（身份证号{ids[2][0]}）预订了明天上午八点从杭州到北京的高铁。车票已出票，请提前半小时到站。",
                "张伟已订好明天上午八点杭州到北京的高铁票。",
                "summarization",
            ),
        ),
        (
            "cn_id",
            arow(
                "把下面的句子改写成否定句。",
                f"我的身份证号码是{ids[3][0]}。",
                f"我的身份证号码不是{ids[3][0]}。",
                "rewrite",
            ),
        ),
        (
            "email",
            arow(
                zsum,
                f"各位同学：期末作业的提交截止时间是下周五晚上十点。请把作业发送到{emails[7]}，逾期不再接收。",
                "期末作业须在下周五晚十点前通过邮件提交。",
                "summarization",
            ),
        ),
        (
            "credit_card",
            arow(
                zsum,
                f"您好，您的订单已支付成功，扣款银行卡号为{cards[3]}，金额为三百元。商品将在三天内发货。",
                "订单已支付三百元，商品将在三天内发货。",
                "summarization",
            ),
        ),
    ]
    for sub, r in zh_pii:
        extra[ZH].append(r)
        tag(ZH, "pii", sub=sub)

    y, mo, d = ids[4][1]
    sk2, ak2, gh2 = sk_key(), akia_key(), ghp_key()
    ph4 = make_us_phone(1)
    ch_pii = [
        (
            "email",
            [
                (
                    f"Can you proofread this? 'Please reach me at {emails[3]} if you has questions.'",
                    f"Sure: 'Please reach me at {emails[3]} if you have questions.'",
                )
            ],
        ),
        (
            "email",
            [
                (
                    f"My email is {emails[4]}. Can you remind me what the capital of Kenya is?",
                    "The capital of Kenya is Nairobi.",
                )
            ],
        ),
        (
            "us_phone",
            [
                (
                    f"I tried calling {ph4} but nobody answered. What should I do?",
                    "You could try again later or send a text message instead.",
                )
            ],
        ),
        (
            "ipv4",
            [
                (
                    f"My router's IP is {ips[2]}. How do I open its settings page?",
                    f"Type {ips[2]} into your browser's address bar and log in with the admin password.",
                )
            ],
        ),
        (
            "ipv4",
            [
                (
                    f"I can't ping {ips[4]} from my laptop. Any ideas?",
                    "Check that both devices are on the same network and that the firewall allows ping requests.",
                )
            ],
        ),
        (
            "ipv4",
            [
                (
                    f"Is {ips[3]} a private address?",
                    "Yes, addresses that start with 192.168 are private.",
                )
            ],
        ),
        (
            "api_key",
            [
                (
                    f"Here is my key {sk2}. Why does my request fail with error 401?",
                    "Error 401 means the key was rejected. Check that it is copied correctly and still active, and never share keys publicly.",
                )
            ],
        ),
        (
            "api_key",
            [
                (
                    f"My AWS access key {ak2} stopped working. What happened?",
                    "It may have been deactivated or rotated. Check its status in the IAM console.",
                )
            ],
        ),
        (
            "api_key",
            [
                (
                    f"I put the token {gh2} in my script. Is that safe?",
                    "No. Store tokens in environment variables or a secret manager instead of in code.",
                )
            ],
        ),
        (
            "cn_id",
            [
                (
                    f"我的身份证号是{ids[4][0]}，帮我看看出生日期是哪天？",
                    f"根据身份证号，出生日期是{y}年{mo}月{d}日。",
                )
            ],
        ),
    ]
    for i, (sub, turns) in enumerate(ch_pii):
        extra[CH].append(make_chat(turns, None, "sharegpt" if i % 2 == 0 else "openai"))
        tag(CH, "pii", sub=sub)

    ph5, ph6 = make_us_phone(0), make_us_phone(1)
    rv_pii = [
        (
            "email",
            arow(
                EN_REVIEW_INSTR,
                f"Great blender, it works perfectly. If anyone has questions, email me at {emails[5]}.",
                "positive",
                "classification",
                "positive",
            ),
        ),
        (
            "email",
            arow(
                EN_REVIEW_INSTR,
                f"The headphones broke after two days. The seller never answered my emails to {emails[6]}.",
                "negative",
                "classification",
                "negative",
            ),
        ),
        (
            "us_phone",
            arow(
                EN_REVIEW_INSTR,
                f"Terrible service. I called {ph5} three times and nobody picked up.",
                "negative",
                "classification",
                "negative",
            ),
        ),
        (
            "us_phone",
            arow(
                EN_REVIEW_INSTR,
                f"Lovely dinner at Harbor Grill. Book ahead by calling {ph6}, it gets busy.",
                "positive",
                "classification",
                "positive",
            ),
        ),
        (
            "cn_mobile",
            arow(
                ZH_REVIEW_INSTR,
                f"快递太慢了，打客服电话{m5}也没人接。",
                "负面",
                "classification",
                "negative",
            ),
        ),
        (
            "credit_card",
            arow(
                EN_REVIEW_INSTR,
                f"They charged my card {cards[4]} twice for one order. Very disappointed.",
                "negative",
                "classification",
                "negative",
            ),
        ),
    ]
    for sub, r in rv_pii:
        extra[CSV].append(r)
        tag(CSV, "pii", sub=sub)

    # over-long outputs (20,000+ characters)
    events = [
        "built a new stone bridge",
        "opened its first school",
        "held a great summer fair",
        "suffered a long winter",
        "planted an orchard by the river",
        "elected a new mayor",
        "repaired the old mill",
        "welcomed a group of new families",
        "lost its harvest to a flood",
        "finished the church tower",
        "started a weekly market",
        "paved the main street",
        "opened a small library",
        "built a railway station",
        "celebrated a royal visit",
    ]
    hist = []
    year = 1640
    while sum(len(s) + 1 for s in hist) < 22000:
        hist.append(f"In {year}, the town of Millbrook {rng.choice(events)}.")
        year += 1
    extra[EN].append(
        arow("Write a detailed history of the fictional town of Millbrook.", "", " ".join(hist))
    )
    tag(EN, "over_long")
    para = (
        "Photosynthesis is the process plants use to turn light into food. Leaves take in carbon "
        "dioxide from the air and water from the soil. Using the energy of sunlight, the green "
        "pigment chlorophyll helps turn these into sugar and oxygen. The sugar feeds the plant and "
        "the oxygen is released into the air. "
    )
    extra[EN].append(arow("Explain how photosynthesis works.", "", (para * 70).strip(), "qa"))
    tag(EN, "over_long")
    extra[EN].append(
        arow("Count from 1 to 4500.", "", ", ".join(str(i) for i in range(1, 4501)) + ".")
    )
    tag(EN, "over_long")
    zpara = "长江是中国最长的河流，发源于青藏高原，向东流经多个省份，最后注入东海。长江流域气候温和，物产丰富，是重要的农业和工业地区。"
    extra[ZH].append(arow("请详细介绍一下长江。", "", zpara * 360, "qa"))
    tag(ZH, "over_long")
    story = (
        "Once upon a time, a small fox lived at the edge of a quiet forest. Every morning it walked "
        "to the river to drink and to watch the fish jump. One day it met an old turtle who told it "
        "stories about the sea.\n"
    )
    extra[CH].append(
        make_chat([("Tell me a very long story.", (story * 110).strip())], None, "sharegpt")
    )
    tag(CH, "over_long")

    # highly repetitive (not over-long)
    extra[EN].append(arow("Describe your favourite food.", "", ("the " * 300).strip(), "qa"))
    tag(EN, "repetitive")
    extra[ZH].append(arow("请介绍一下你自己。", "", "好的" * 200, "qa"))
    tag(ZH, "repetitive")
    extra[CH].append(
        make_chat(
            [("What is the weather like on Mars?", ("I am not sure.\n" * 50).strip())],
            None,
            "openai",
        )
    )
    tag(CH, "repetitive")

    # foreign-language rows
    foreign_en = [
        (
            "fr",
            arow(
                "Quelle est la capitale de la Belgique ?",
                "",
                "La capitale de la Belgique est Bruxelles.",
                "qa",
            ),
        ),
        (
            "fr",
            arow(
                "Résume le texte suivant en une phrase.",
                "La bibliothèque municipale sera fermée pendant deux semaines pour des travaux. Elle rouvrira le premier lundi du mois prochain avec une nouvelle salle de lecture.",
                "La bibliothèque ferme deux semaines pour travaux et rouvrira avec une nouvelle salle de lecture.",
                "summarization",
            ),
        ),
        (
            "fr",
            arow(
                "Donne-moi trois fruits rouges.",
                "",
                "La fraise, la cerise et la framboise sont des fruits rouges.",
            ),
        ),
        ("de", arow("Wie viele Tage hat eine Woche?", "", "Eine Woche hat sieben Tage.", "qa")),
        (
            "de",
            arow(
                "Schreibe einen Satz über das Wetter.",
                "",
                "Heute scheint die Sonne und es ist angenehm warm.",
            ),
        ),
        ("es", arow("¿Cuál es la capital de Chile?", "", "La capital de Chile es Santiago.", "qa")),
    ]
    for sub, r in foreign_en:
        extra[EN].append(r)
        tag(EN, "foreign_language", sub=sub)
    for r in [
        arow("日本の首都はどこですか？", "", "日本の首都は東京です。", "qa"),
        arow(
            "次の文を疑問文に書き換えてください。",
            "これはペンです。",
            "これはペンですか？",
            "rewrite",
        ),
    ]:
        extra[ZH].append(r)
        tag(ZH, "foreign_language", sub="ja")
    extra[CH].append(
        make_chat(
            [
                (
                    "Kannst du mir helfen, einen Brief zu schreiben?",
                    "Natürlich! Worum soll es in dem Brief gehen?",
                )
            ],
            None,
            "sharegpt",
        )
    )
    tag(CH, "foreign_language", sub="de")
    extra[CH].append(
        make_chat(
            [
                (
                    "¿Qué tiempo hace normalmente en Madrid en verano?",
                    "En verano suele hacer mucho calor en Madrid y llueve poco.",
                )
            ],
            None,
            "openai",
        )
    )
    tag(CH, "foreign_language", sub="es")

    # code blocks with < and > (valid rows that an HTML stripper must NOT damage)
    code_rows = [
        arow(
            "Write a Python function that returns the larger of two numbers.",
            "",
            "```python\ndef larger(a, b):\n    return a if a > b else b\n```",
        ),
        arow(
            "Write a Python function that keeps only the numbers smaller than a limit.",
            "",
            "```python\ndef below(numbers, limit):\n    return [n for n in numbers if n < limit]\n```",
        ),
        arow(
            "Write a Python function that checks whether a is less than b and c is greater than d.",
            "",
            "```python\ndef check(a, b, c, d):\n    return a < b and c > d\n```",
        ),
    ]
    for r in code_rows:
        extra[EN].append(r)
        tag(EN, "code_block_angle_brackets")

    # traditional Chinese rows
    trad = [
        arow("把下面的句子改寫成疑問句。", "這是一個測試。", "這是一個測試嗎？", "rewrite"),
        arow(
            "請解釋「圖書館」這個詞的意思。", "", "圖書館是收藏書籍並供人閱讀和借閱的地方。", "qa"
        ),
        arow("溫暖的反義詞是什麼？", "", "溫暖的反義詞是寒冷。", "qa"),
        arow(
            "用一句話概括下面這段文字。",
            "今天早上，學校舉辦了一場運動會。學生們參加了跑步、跳遠和拔河比賽。天氣很好，大家都很開心。",
            "學校今天早上舉辦了一場氣氛愉快的運動會。",
            "summarization",
        ),
        arow(
            ZH_REVIEW_INSTR.replace("判断", "判斷")
            .replace("评论", "評論")
            .replace("面还", "面還")
            .replace("负面", "負面"),
            "這家餐廳的服務很好，菜也非常好吃。",
            "正面",
            "classification",
            "positive",
        ),
        arow(
            "判斷下面評論的情感是正面還是負面。",
            "這部電影太無聊了，我看到一半就離開了。",
            "負面",
            "classification",
            "negative",
        ),
        arow("一個星期有幾天？", "", "一個星期有七天。", "qa"),
        arow(
            "請把下面的句子改寫成否定句。",
            "我們明天會去圖書館。",
            "我們明天不會去圖書館。",
            "rewrite",
        ),
        arow("熊貓是什麼顏色的？", "", "熊貓是黑白相間的。", "qa"),
        arow("請寫一句關於春天的話。", "", "春天來了，花開了，鳥兒在樹上唱歌。"),
    ]
    for r in trad:
        extra[ZH].append(r)
        tag(ZH, "traditional_chinese")

    # malformed JSON lines (raw strings, placed in the middle of the file)
    mal_zh = [
        '{"instruction": "德国的首都是哪里？", "input": "", "output": "德国的首都是',
        '{"instruction": "3加4等于多少？", "input": "", "output": "3加4等于7。", "task": "qa",}',
    ]
    mal_ch = [
        '{"conversations": [{"from": "human", "value": "What is 2 plus 2?"}, {"from": "gpt", "value": "2 plus 2 is 4."}'
    ]
    for s in mal_zh:
        mid[ZH].append(s)
        tag(ZH, "malformed_json")
    for s in mal_ch:
        mid[CH].append(s)
        tag(CH, "malformed_json")

    # ---------------- near duplicates (of clean rows that stay in the file) ----------------
    def near_batch(pool, fname, lang, plan):
        for kind, n in plan:
            for _ in range(n):
                if kind == "word_changed":
                    swaps = EN_SWAPS if lang == "en" else ZH_SWAPS
                    lim = 100 if lang == "en" else 50
                    src = pool.pick(
                        lambda r, lim=lim, swaps=swaps: (
                            is_long(r, lim) and any(a in r["input"] for a, _ in swaps)
                        )
                    )
                elif kind == "extra_punctuation":
                    src = pool.pick(lambda r: is_long(r, 60 if lang == "en" else 30))
                elif kind == "fullwidth" and lang == "en":
                    src = pool.pick(
                        lambda r: (
                            any(c.isdigit() for c in r["instruction"] + r["input"])
                            or bool(r["input"])
                        )
                    )
                elif kind == "fullwidth":
                    src = pool.pick(
                        lambda r: any(c.isdigit() for c in r["instruction"] + r["output"])
                    )
                else:
                    src = pool.pick()
                v = near_variant(src, kind, lang)
                NEAR_PAIRS.append((kind, src, v))
                extra[fname].append(v)
                tag(fname, "near_duplicate", sub=kind)

    near_batch(
        en,
        EN,
        "en",
        [
            ("word_changed", 5),
            ("extra_punctuation", 3),
            ("casing", 3),
            ("whitespace", 3),
            ("fullwidth", 2),
        ],
    )
    near_batch(
        zh,
        ZH,
        "zh",
        [("word_changed", 3), ("extra_punctuation", 2), ("whitespace", 2), ("fullwidth", 3)],
    )
    # reviews: mixed languages, choose per row
    for kind, n in [("word_changed", 3), ("whitespace", 2), ("casing", 2), ("fullwidth", 1)]:
        for _ in range(n):
            if kind == "word_changed":
                src = rv.pick(
                    lambda r: (
                        rv_lang(r) == "en"
                        and is_long(r, 110)
                        and any(a in r["input"] for a, _ in EN_SWAPS)
                    )
                )
            elif kind in ("casing", "fullwidth"):
                src = rv.pick(lambda r: rv_lang(r) == "en")
            else:
                src = rv.pick()
            v = near_variant(src, kind, rv_lang(src))
            NEAR_PAIRS.append((kind, src, v))
            extra[CSV].append(v)
            tag(CSV, "near_duplicate", sub=kind)

    def chat_first_user(o):
        msgs, rk, vk = chat_turns(o)
        return next(m[vk] for m in msgs if m[rk] in ("human", "user"))

    chat_pred = {
        "casing": lambda o: chat_first_user(o).upper() != chat_first_user(o),
        "word_changed": lambda o: (
            len(flat_text(o)) >= 100 and any(a in chat_first_user(o) for a in CHAT_SWAPS)
        ),
        "whitespace": lambda o: " " in chat_first_user(o),
        "extra_punctuation": lambda o: len(flat_text(o)) >= 100,
    }
    for kind, n in [
        ("casing", 2),
        ("whitespace", 2),
        ("extra_punctuation", 1),
        ("word_changed", 1),
    ]:
        for _ in range(n):
            src = ch.pick(chat_pred[kind])
            v = chat_near_variant(src, kind)
            NEAR_PAIRS.append((kind, src, v))
            extra[CH].append(v)
            tag(CH, "near_duplicate", sub=kind)

    # ---------------- exact duplicates ----------------
    for pool, fname, n in ((en, EN, 15), (zh, ZH, 10), (rv, CSV, 5), (ch, CH, 4)):
        for _ in range(n):
            extra[fname].append(copy.deepcopy(pool.pick()))
            tag(fname, "exact_duplicate", sub="same_file")
    for _ in range(2):
        extra[ZH].append(copy.deepcopy(en.pick()))
        tag(ZH, "exact_duplicate", sub="cross_file")
        extra[EN].append(copy.deepcopy(zh.pick()))
        tag(EN, "exact_duplicate", sub="cross_file")
        extra[EN].append(copy.deepcopy(rv.pick()))
        tag(EN, "exact_duplicate", sub="cross_file")

    # ---------------- write files ----------------
    final = {
        EN: place(en.rows, extra[EN]),
        ZH: place(zh.rows, extra[ZH], mid[ZH]),
        CH: place(ch.rows, extra[CH], mid[CH]),
        CSV: place(rv.rows, extra[CSV]),
    }

    with open(os.path.join(OUT_DIR, EN), "w", encoding="utf-8", newline="\n") as f:
        json.dump(final[EN], f, ensure_ascii=False, indent=2)
        f.write("\n")
    for fname in (ZH, CH):
        with open(os.path.join(OUT_DIR, fname), "w", encoding="utf-8", newline="\n") as f:
            for item in final[fname]:
                f.write(item if isinstance(item, str) else json.dumps(item, ensure_ascii=False))
                f.write("\n")
    with open(os.path.join(OUT_DIR, CSV), "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(
            f, fieldnames=["instruction", "input", "output", "task", "label"], lineterminator="\n"
        )
        w.writeheader()
        for r in final[CSV]:
            w.writerow(
                {k: r.get(k, "") for k in ["instruction", "input", "output", "task", "label"]}
            )

    order = [
        "exact_duplicate",
        "near_duplicate",
        "empty_output",
        "empty_instruction",
        "html",
        "control_chars",
        "pii",
        "over_long",
        "repetitive",
        "foreign_language",
        "low_alnum",
        "malformed_json",
        "wrong_type",
        "code_block_angle_brackets",
        "traditional_chinese",
    ]
    assert set(DEFECTS) == set(order), set(DEFECTS) ^ set(order)
    with open(os.path.join(OUT_DIR, "DEFECTS.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump({k: DEFECTS[k] for k in order}, f, indent=2)
        f.write("\n")

    # ---------------- self-checks ----------------
    everything = [it for items in final.values() for it in items]
    counts = Counter(canon(it) for it in everything)
    verbatim_extra = sum(v - 1 for v in counts.values())
    assert verbatim_extra == DEFECTS["exact_duplicate"], (
        verbatim_extra,
        DEFECTS["exact_duplicate"],
    )
    sims = []
    for kind, src, var in NEAR_PAIRS:
        assert canon(src) != canon(var), kind
        sims.append(
            (
                kind,
                jaccard5(flat_text(src), flat_text(var)),
                norm(flat_text(src)) == norm(flat_text(var)),
            )
        )

    # ---------------- report ----------------
    print("rows per file:")
    for fname, items in final.items():
        print(f"  {fname:22s} {len(items)}")
    print(f"  {'total':22s} {sum(len(v) for v in final.values())}")
    print("defects:", json.dumps({k: DEFECTS[k] for k in order}))
    for fname in (EN, ZH, CH, CSV):
        print(f"  {fname}: {dict(sorted(PER_FILE[fname].items()))}")
    print("subtypes:", dict(sorted(SUBTYPES.items())))
    print(f"verbatim duplicate rows (extra copies): {verbatim_extra}")
    for kind in sorted({k for k, _, _ in sims}):
        vals = sorted(j for k, j, _ in sims if k == kind)
        same = sum(1 for k, _, e in sims if k == kind and e)
        print(
            f"near_duplicate {kind:18s} n={len(vals):2d} char5-Jaccard min={vals[0]:.2f} "
            f"max={vals[-1]:.2f}; identical after NFKC+lower+space-folding: {same}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
