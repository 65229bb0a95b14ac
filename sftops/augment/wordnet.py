"""WordNet from Debian's `wordnet-base` files, read through NLTK without any download.

NLTK's reader wants ``<root>/corpora/wordnet`` with the dict files plus a ``lexnames`` file
that Debian does not ship, and (since NLTK 3.10) refuses symlinked or hard-linked files, so the
files are copied once into the cache folder.
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path
from typing import Any

from sftops.errors import SftopsError
from sftops.io import atomic_path, file_lock

DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")
REQUIRED_FILES = ("data.noun", "index.noun", "data.verb", "index.verb", "data.adj", "index.adj")
# The standard WordNet lexicographer files, in file-number order.
LEXNAMES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]
_SYNTACTIC_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def lexnames_text() -> str:
    """The 45-line ``lexnames`` file: ``NN<TAB>name<TAB>category``.

    >>> lexnames_text().splitlines()[0], lexnames_text().splitlines()[44]
    ('00\\tadj.all\\t3', '44\\tadj.ppl\\t3')
    """
    return "".join(
        f"{number:02d}\t{name}\t{_SYNTACTIC_CATEGORY[name.split('.')[0]]}\n"
        for number, name in enumerate(LEXNAMES)
    )


def prepare_wordnet(cache_dir: str | Path, source: Path = DEBIAN_WORDNET_DIR) -> Path:
    """Lay out the NLTK folder under ``cache_dir`` (once) and return the NLTK data root."""
    missing = [name for name in REQUIRED_FILES if not (source / name).exists()]
    if missing:
        raise SftopsError(
            f"WordNet files missing in {source} ({', '.join(missing)}): install the Debian "
            "packages wordnet-base and wordnet-sense-index (scripts/setup.sh does)"
        )
    root = Path(cache_dir).resolve() / "nltk_data"
    target = root / "corpora" / "wordnet"
    # One process lays the folder out at a time (runs and clones may share the cache); each
    # file appears whole (a reader already loading WordNet never sees a half-copied one).
    with file_lock(root / ".lock"):
        target.mkdir(parents=True, exist_ok=True)
        for path in source.iterdir():
            dest = target / path.name
            if path.is_file() and (not dest.exists() or dest.stat().st_size != path.stat().st_size):
                with atomic_path(dest) as tmp:
                    shutil.copyfile(path, tmp)
                    shutil.copymode(path, tmp)
        lexnames = target / "lexnames"
        if not lexnames.exists():
            with atomic_path(lexnames) as tmp:
                tmp.write_text(lexnames_text())
    return root


@cache
def load_wordnet(cache_dir: str) -> Any:
    """NLTK's WordNet reader over the Debian files (loading takes ~2 s, then it is cached)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    root = prepare_wordnet(cache_dir)
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    return WordNetCorpusReader(str(root / "corpora" / "wordnet"), None)
