"""Writing the four files and ``DEFECTS.json``, the self-checks, and the printed report."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter

from .common import norm
from .sample import CH, CSV, EN, ZH, Sample, canon, flat_text, jaccard5, place

DEFECT_ORDER = [
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
CSV_FIELDS = ["instruction", "input", "output", "task", "label"]


def assemble(s: Sample) -> dict[str, list]:
    """Each file's clean rows with its defect rows inserted at random positions."""
    return {
        EN: place(s.en.rows, s.extra[EN]),
        ZH: place(s.zh.rows, s.extra[ZH], s.mid[ZH]),
        CH: place(s.ch.rows, s.extra[CH], s.mid[CH]),
        CSV: place(s.rv.rows, s.extra[CSV]),
    }


def write_files(out_dir: str, final: dict[str, list], s: Sample) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, EN), "w", encoding="utf-8", newline="\n") as f:
        json.dump(final[EN], f, ensure_ascii=False, indent=2)
        f.write("\n")
    for fname in (ZH, CH):
        with open(os.path.join(out_dir, fname), "w", encoding="utf-8", newline="\n") as f:
            for item in final[fname]:
                f.write(item if isinstance(item, str) else json.dumps(item, ensure_ascii=False))
                f.write("\n")
    with open(os.path.join(out_dir, CSV), "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, lineterminator="\n")
        w.writeheader()
        for r in final[CSV]:
            w.writerow({k: r.get(k, "") for k in CSV_FIELDS})
    assert set(s.defects) == set(DEFECT_ORDER), set(s.defects) ^ set(DEFECT_ORDER)
    with open(os.path.join(out_dir, "DEFECTS.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump({k: s.defects[k] for k in DEFECT_ORDER}, f, indent=2)
        f.write("\n")


def check_and_report(final: dict[str, list], s: Sample) -> None:
    """Assert that the verbatim duplicates are exactly the planted ones; print the counts."""
    everything = [it for items in final.values() for it in items]
    counts = Counter(canon(it) for it in everything)
    verbatim_extra = sum(v - 1 for v in counts.values())
    assert verbatim_extra == s.defects["exact_duplicate"], (
        verbatim_extra,
        s.defects["exact_duplicate"],
    )
    sims = []
    for kind, src, var in s.near_pairs:
        assert canon(src) != canon(var), kind
        a, b = flat_text(src), flat_text(var)
        sims.append((kind, jaccard5(a, b), norm(a) == norm(b)))

    print("rows per file:")
    for fname, items in final.items():
        print(f"  {fname:22s} {len(items)}")
    print(f"  {'total':22s} {sum(len(v) for v in final.values())}")
    print("defects:", json.dumps({k: s.defects[k] for k in DEFECT_ORDER}))
    for fname in (EN, ZH, CH, CSV):
        print(f"  {fname}: {dict(sorted(s.per_file[fname].items()))}")
    print("subtypes:", dict(sorted(s.subtypes.items())))
    print(f"verbatim duplicate rows (extra copies): {verbatim_extra}")
    for kind in sorted({k for k, _, _ in sims}):
        vals = sorted(j for k, j, _ in sims if k == kind)
        same = sum(1 for k, _, e in sims if k == kind and e)
        print(
            f"near_duplicate {kind:18s} n={len(vals):2d} char5-Jaccard min={vals[0]:.2f} "
            f"max={vals[-1]:.2f}; identical after NFKC+lower+space-folding: {same}"
        )
