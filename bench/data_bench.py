#!/usr/bin/env python
"""Throughput / memory benchmark of the data stages: ingest -> clean -> validate -> split,
side by side with a bare rensa MinHash + LSH dedup of the same rows.

Generates N synthetic Alpaca-style JSONL rows (~20% Chinese, 5% exact duplicates, 5% near
duplicates, ~0.5% defects: empty outputs, HTML tags, e-mail addresses), then, in fresh
subprocesses per size: (1) the in-memory stage functions with default params, (2) the reference:
the rows' texts shingled as clean shingles them, rensa's bulk MinHash digests and its LSH index
(``insert_matrix_and_query_duplicate_flags``): the irreducible core of clean. Peak memory is
the largest summed RSS of the whole process tree (workers included), sampled with psutil.

Targets (issue 16), at 1M rows: stages / reference time <= 1.75 and peak memory <= 4 GiB.
Identity: the cleaned tables (kept + quarantine + counts) of the seed-0 100k table must hash to
the value recorded before the vectorised clean (``RECORDED_CLEAN``). Exits 1 when a target is
missed or a fingerprint differs.

Usage (from the repository root, after ``source scripts/env.sh``)::

    python bench/data_bench.py                         # 100k and 1M (several minutes)
    python bench/data_bench.py --sizes 100000          # ratio + identity check at 100k
    python bench/data_bench.py --sizes 2000            # smoke run, seconds
    python bench/data_bench.py --sizes 1000000 --timeout 900

Generation time is printed separately and is not part of the timed pipeline. Results are also
written to ``bench/results/data_bench.json`` (gitignored).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sftops.reporting import cpu_model

ROOT = Path(__file__).resolve().parent.parent
RESULTS_FILE = ROOT / "bench" / "results" / "data_bench.json"
GIB = 1024**3

# Targets from issue 16 (for N = 1M).
TARGET_N = 1_000_000
TARGET_VS_RENSA = 1.75
TARGET_RSS_GIB = 4.0
# Fingerprints of clean_table's result (see clean_fingerprint) on generate_rows(n, seed) written
# as synthetic_<n>.jsonl, recorded with the row-by-row clean before it was vectorised: the
# results must not change. (6a309ecae498094b with the ingest of 42da27d; 90d0173e5112c656 with
# the ingest of main at 10b692d, which changed the ingested table; the same clean gave both.)
RECORDED_CLEAN = {(100_000, 0): "90d0173e5112c656"}

EXACT_DUP_RATE = 0.05
NEAR_DUP_RATE = 0.05
CHINESE_RATE = 0.20
DEFECT_RATE = 0.005
STAGES = ("ingest", "clean", "validate", "split")

# ------------------------------------------------------------------------------------------
# Synthetic data
# ------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


NOUNS = _words(
    """
system model dataset teacher student river city company market engine network language
garden kitchen doctor patient budget report museum library bridge computer program function
variable error server database customer product service policy history science planet ocean
forest mountain village festival recipe ingredient vegetable battery camera window keyboard
algorithm experiment hypothesis theory equation graph matrix vector signal sensor robot
contract invoice meeting schedule project deadline manager employee team strategy campaign
article chapter novel poem song painting movie audience author character story question
answer example summary paragraph sentence word letter email message document spreadsheet
password account website browser protocol packet router cloud cluster container pipeline
climate weather storm energy solar wind carbon emission vehicle train airport passenger
hotel journey map country border government election citizen law court judge lawyer bank
loan interest payment price inflation economy industry factory worker machine tool material
protein cell gene virus vaccine hospital nurse therapy diet exercise muscle brain memory habit
"""
)
VERBS = _words(
    """
explains describes improves reduces increases supports protects changes creates builds
measures predicts compares analyzes organizes connects requires includes prevents produces
delivers controls monitors processes stores transforms updates replaces follows affects
influences shapes limits expands simplifies reveals highlights summarizes generates solves
"""
)
VERBS_BASE = _words(
    """
explain describe improve reduce increase support protect change create build measure predict
compare analyze organize connect prevent produce deliver control monitor process store
transform update replace summarize generate solve evaluate design plan review translate
classify rewrite list identify estimate calculate outline
"""
)
ADJECTIVES = _words(
    """
simple complex modern ancient efficient reliable fragile quick slow careful large small
important common rare useful dangerous safe expensive cheap public private local global
digital physical social natural artificial accurate noisy clean bright dark quiet busy new
old young strong weak hidden visible popular formal informal basic advanced practical
"""
)
ADVERBS = _words(
    """
quickly carefully often rarely usually slowly clearly directly easily quietly gradually
significantly nearly mostly always sometimes
"""
)
PREPOSITIONS = _words("in on with for from about under over through during without between")
CONNECTORS = _words("because although while when since so and but however therefore")
INSTRUCTION_STARTS = [
    "Explain why",
    "Describe how",
    "Write a short paragraph about how",
    "Summarize the reasons why",
    "Give three examples showing that",
    "Can you tell me whether",
    "Please explain to a beginner how",
    "Write a brief note describing why",
    "What happens when",
    "Rewrite the following so that it says",
    "In your own words, explain how",
    "Compare the ways in which",
]
TASK_TEMPLATES = [
    "{v} the {a} {n} and the {n2}.",
    "How can we {v2} a {a} {n} for the {n2}?",
    "{v} how the {n} of the {n2} works.",
    "{v} a list of {a} ideas for the {n}.",
]

# Common simplified words, plus a few traditional ones (to_simplified has work to do).
ZH_WORDS = _words(
    """
我们 你们 他们 这个 那个 什么 怎么 为什么 可以 需要 应该 已经 因为 所以 但是 如果 虽然 然后
问题 方法 系统 数据 模型 学生 老师 学校 公司 市场 经济 社会 文化 历史 科学 技术 网络 电脑
手机 城市 农村 国家 政府 人民 工作 生活 学习 研究 发展 管理 服务 产品 质量 价格 环境 能源
天气 季节 春天 夏天 秋天 冬天 河流 山脉 森林 海洋 动物 植物 健康 医生 医院 病人 运动 饮食
时间 地方 朋友 家庭 孩子 父母 故事 文章 句子 词语 意思 答案 例子 原因 结果 影响 作用 特点
重要 简单 复杂 容易 困难 快速 缓慢 美丽 安静 热闹 新的 旧的 大的 小的 好的 主要 基本 具体
解释 描述 分析 比较 总结 翻译 计算 设计 改进 提高 减少 增加 保护 创造 建立 提供 使用 选择
一个 一些 许多 非常 特别 比较 更加 最后 首先 其次 同时 例如 以及 还有 就是 不是 没有 这样
這個 學習 問題 電腦 國家 經濟 歷史 環境 時間 發展
"""
)
ZH_INSTRUCTION_STARTS = [
    "请解释",
    "请描述",
    "简单介绍一下",
    "为什么说",
    "请总结",
    "请翻译",
    "如何理解",
]

EMAILS = ["john.doe@example.com", "li.wei@mail.example.cn", "support@acme-corp.io"]
HTML_WRAPS = [("<p>", "</p>"), ("<b>", "</b>"), ("<div>", "</div>"), ("<p><i>", "</i><br></p>")]


def _english_sentence(r: random.Random) -> str:
    n, v, a = r.choice(NOUNS), r.choice(VERBS), r.choice(ADJECTIVES)
    pick = r.random()
    if pick < 0.3:
        s = f"the {a} {n} {v} the {r.choice(NOUNS)} {r.choice(PREPOSITIONS)} a {r.choice(NOUNS)}"
    elif pick < 0.55:
        s = (
            f"a {a} {n} {r.choice(ADVERBS)} {v} the {r.choice(ADJECTIVES)} {r.choice(NOUNS)} "
            f"{r.choice(CONNECTORS)} the {r.choice(NOUNS)} is {r.choice(ADJECTIVES)}"
        )
    elif pick < 0.8:
        s = (
            f"this {n} {v} {r.choice(NOUNS)} and {r.choice(NOUNS)} {r.choice(PREPOSITIONS)} "
            f"the {r.choice(ADJECTIVES)} {r.choice(NOUNS)} of the {r.choice(NOUNS)}"
        )
    else:
        s = (
            f"in a {a} {n} the {r.choice(NOUNS)} {r.choice(ADVERBS)} {v} "
            f"{r.choice(NOUNS)} that it {r.choice(VERBS)}"
        )
    return s[0].upper() + s[1:] + "."


def _english_instruction(r: random.Random) -> str:
    if r.random() < 0.7:
        start = r.choice(INSTRUCTION_STARTS)
        body = (
            f"the {r.choice(ADJECTIVES)} {r.choice(NOUNS)} {r.choice(VERBS)} the "
            f"{r.choice(NOUNS)} {r.choice(PREPOSITIONS)} a {r.choice(ADJECTIVES)} "
            f"{r.choice(NOUNS)}"
        )
        if r.random() < 0.4:
            body += f" {r.choice(CONNECTORS)} the {r.choice(NOUNS)} {r.choice(VERBS)} it"
        return f"{start} {body}."
    return r.choice(TASK_TEMPLATES).format(
        v=r.choice(VERBS_BASE).capitalize(),
        v2=r.choice(VERBS_BASE),
        a=r.choice(ADJECTIVES),
        n=r.choice(NOUNS),
        n2=r.choice(NOUNS),
    )


def _chinese_sentence(r: random.Random) -> str:
    words = r.choices(ZH_WORDS, k=r.randint(4, 8))
    if len(words) > 5 and r.random() < 0.5:
        words.insert(r.randint(2, len(words) - 2), "，")
    return "".join(words) + "。"


def _pool(make: Any, size: int, r: random.Random) -> np.ndarray:
    return np.array([make(r) for _ in range(size)], dtype=object)


def _joined(pool: np.ndarray, counts: np.ndarray, rng: np.random.Generator, sep: str) -> list:
    """One text per row: counts[i] sentences drawn from the pool, joined with sep."""
    picks = pool[rng.integers(0, len(pool), int(counts.sum()))].tolist()
    out, pos = [], 0
    for c in counts.tolist():
        out.append(sep.join(picks[pos : pos + c]))
        pos += c
    return out


def _perturb(row: dict[str, str], r: random.Random) -> dict[str, str]:
    """A near duplicate: one or two words of the longest field replaced or inserted."""
    row = dict(row)
    name = max(("instruction", "input", "output"), key=lambda k: len(row[k]))
    text = row[name]
    chinese = not text.isascii()
    tokens = list(text) if chinese else text.split(" ")
    for _ in range(r.randint(1, 2)):
        i = r.randrange(len(tokens))
        word = r.choice(ZH_WORDS)[0] if chinese else r.choice(NOUNS + ADJECTIVES + ADVERBS)
        if r.random() < 0.5:
            tokens[i] = word
        else:
            tokens.insert(i, word)
    row[name] = ("" if chinese else " ").join(tokens)
    return row


def _add_defect(row: dict[str, str], r: random.Random) -> dict[str, str]:
    kind = r.random()
    if kind < 1 / 3:
        row["output"] = ""
    elif kind < 2 / 3:
        open_tag, close_tag = r.choice(HTML_WRAPS)
        row["output"] = f"{open_tag}{row['output']}{close_tag}"
    else:
        row["output"] += f" Contact {r.choice(EMAILS)} for details."
    return row


def generate_rows(n: int, seed: int = 0) -> tuple[list[dict[str, str]], dict[str, int]]:
    """n deterministic synthetic rows and counts of what was planted."""
    r = random.Random(seed)
    rng = np.random.default_rng(seed)
    pool_size = max(1000, min(n, 200_000))
    en_pool = _pool(_english_sentence, pool_size, r)
    en_instr_pool = _pool(_english_instruction, pool_size, r)
    zh_pool = _pool(_chinese_sentence, max(1000, pool_size // 4), r)
    zh_starts = np.array(ZH_INSTRUCTION_STARTS, dtype=object)

    # Row plan: 0 fresh, 1 exact duplicate, 2 near duplicate (of an earlier row).
    u = rng.random(n)
    kind = np.where(u < EXACT_DUP_RATE, 1, np.where(u < EXACT_DUP_RATE + NEAR_DUP_RATE, 2, 0))
    if n:
        kind[0] = 0
    fresh = int((kind == 0).sum())
    chinese = rng.random(fresh) < CHINESE_RATE
    n_zh, n_en = int(chinese.sum()), int((~chinese).sum())

    # English: instruction 1 pool entry (8-20 words), input 0-3 sentences (0-40 words, 40%
    # empty), output 1-5 sentences (~10-60 words).
    en_instr = en_instr_pool[rng.integers(0, len(en_instr_pool), n_en)].tolist()
    en_in_counts = np.where(rng.random(n_en) < 0.4, 0, rng.integers(1, 4, n_en))
    en_input = _joined(en_pool, en_in_counts, rng, " ")
    en_output = _joined(en_pool, rng.integers(1, 6, n_en), rng, " ")
    # Chinese: instruction a start + 1 sentence, input 0-1, output 1-4 sentences.
    zh_instr = [
        s + t
        for s, t in zip(
            zh_starts[rng.integers(0, len(zh_starts), n_zh)].tolist(),
            _joined(zh_pool, np.ones(n_zh, dtype=int), rng, ""),
            strict=True,
        )
    ]
    zh_input = _joined(zh_pool, (rng.random(n_zh) < 0.3).astype(int), rng, "")
    zh_output = _joined(zh_pool, rng.integers(1, 5, n_zh), rng, "")

    defects = rng.random(fresh) < DEFECT_RATE
    rows: list[dict[str, str]] = []
    i_en = i_zh = i_fresh = 0
    planted = {"exact_duplicates": 0, "near_duplicates": 0, "defects": 0, "chinese": 0}
    for k in kind.tolist():
        if k == 0:
            if chinese[i_fresh]:
                row = {
                    "instruction": zh_instr[i_zh],
                    "input": zh_input[i_zh],
                    "output": zh_output[i_zh],
                }
                i_zh += 1
                planted["chinese"] += 1
            else:
                row = {
                    "instruction": en_instr[i_en],
                    "input": en_input[i_en],
                    "output": en_output[i_en],
                }
                i_en += 1
            if defects[i_fresh]:
                row = _add_defect(row, r)
                planted["defects"] += 1
            i_fresh += 1
        elif k == 1:
            row = rows[r.randrange(len(rows))]
            planted["exact_duplicates"] += 1
        else:
            row = _perturb(rows[r.randrange(len(rows))], r)
            planted["near_duplicates"] += 1
        rows.append(row)
    return rows, planted


def write_jsonl(rows: list[dict[str, str]], path: Path) -> None:
    dumps = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(**kw) builds one per call
    with path.open("w", encoding="utf-8") as handle:
        for start in range(0, len(rows), 50_000):
            chunk = rows[start : start + 50_000]
            handle.write("\n".join(dumps(row) for row in chunk) + "\n")


# ------------------------------------------------------------------------------------------
# Child: one size, one process
# ------------------------------------------------------------------------------------------


def clean_fingerprint(result: Any) -> str:
    """Hash of a CleanResult: kept and quarantined rows (values and dtypes) and the counts."""
    return str(result.fingerprint())


def run_reference(source: Path, size: int) -> dict[str, Any]:
    """The bare dedup: shingles of each row's text, rensa digests, rensa LSH."""
    from rensa import RMinHash, RMinHashLSH

    from sftops.config import CleanParams
    from sftops.data.dedup import MINHASH_SEED, lsh_bands
    from sftops.text import shingles

    nd = CleanParams().near_dedup
    with source.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    texts = [" ".join(t for t in (r["instruction"], r["input"], r["output"]) if t) for r in rows]
    del rows
    bands, _ = lsh_bands(nd.threshold, nd.num_perm)
    started, cpu_started = time.perf_counter(), _cpu_s()
    token_sets = [shingles(t, nd.word_ngram, nd.char_ngram) for t in texts]
    digests = RMinHash.digest_matrix_from_token_sets(token_sets, nd.num_perm, MINHASH_SEED)
    del token_sets
    lsh = RMinHashLSH(threshold=nd.threshold, num_perm=nd.num_perm, num_bands=bands)
    flags = lsh.insert_matrix_and_query_duplicate_flags(digests)
    seconds = time.perf_counter() - started
    return {
        "size": size,
        "reference_s": seconds,
        "reference_core_cpu_s": _cpu_s() - cpu_started,
        "flagged": int(sum(flags)),
    }


def _cpu_s() -> float:
    """CPU seconds of this process (all its threads) and of the children it has waited for
    (the stages' worker pools, reaped when a stage ends)."""
    import resource

    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _rss_gib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / GIB


def run_child(source: Path, size: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    from sftops.config import IngestParams, Params, SourceParams
    from sftops.data.clean import clean_table
    from sftops.data.ingest import ingest_sources
    from sftops.data.split import split_table
    from sftops.data.validate import validate_table

    params = Params()
    ingest_cfg = IngestParams(sources=[SourceParams(path=str(source))])
    out: dict[str, Any] = {
        "size": size,
        "import_s": time.perf_counter() - t0,
        "rss_after_import_gib": _rss_gib(),
        "stages": {},
        "rss_after_stage_gib": {},
    }

    out["stages_cpu"] = {}

    def timed(name: str, fn: Any, *args: Any) -> Any:
        start, cpu_start = time.perf_counter(), _cpu_s()
        result = fn(*args)
        out["stages"][name] = time.perf_counter() - start
        out["stages_cpu"][name] = _cpu_s() - cpu_start
        out["rss_after_stage_gib"][name] = _rss_gib()
        return result

    ingested = timed("ingest", ingest_sources, ingest_cfg)
    out["rows_ingested"], out["ingest_quarantined"] = len(ingested.table), len(ingested.quarantine)
    table = ingested.table
    del ingested  # a stage only hands its table on, as the DVC stages do via parquet

    cleaned = timed("clean", clean_table, table, params.clean)
    del table
    out["clean_fingerprint"] = clean_fingerprint(cleaned)
    reasons = (
        cleaned.quarantine["reason"].value_counts().to_dict() if len(cleaned.quarantine) else {}
    )
    out["rows_kept"] = len(cleaned.kept)
    out["clean_quarantined_by_reason"] = {str(k): int(v) for k, v in reasons.items()}
    out["exact_duplicates_removed"] = int(reasons.get("exact_duplicate", 0))
    out["near_duplicates_removed"] = int(reasons.get("near_duplicate", 0))
    out["clean_modified"] = cleaned.modified
    kept = cleaned.kept
    del cleaned

    validated = timed("validate", validate_table, kept, params.validate_, params.clean.languages)
    del kept
    out["rows_valid"], out["validate_quarantined"] = len(validated.valid), len(validated.quarantine)
    out["validate_table_errors"] = validated.table_errors
    valid = validated.valid
    del validated

    split = timed("split", split_table, valid, params.split)
    out["split_rows"] = {str(k): int(v) for k, v in split["split"].value_counts().items()}

    out["total_s"] = sum(out["stages"].values())
    out["total_cpu_s"] = sum(out["stages_cpu"].values())
    out["rows_per_s"] = size / out["total_s"] if out["total_s"] else float("inf")
    return out


# ------------------------------------------------------------------------------------------
# Parent
# ------------------------------------------------------------------------------------------


def run_measured(cmd: list[str], timeout: float) -> tuple[dict[str, Any], float]:
    """Run a child; its last stdout line (JSON) and the peak summed RSS (GiB) of its process
    tree, workers included, sampled every 50 ms."""
    import resource

    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env, cwd=ROOT)
        root = psutil.Process(proc.pid)
        peak, started = 0, time.perf_counter()
        while proc.poll() is None:
            if time.perf_counter() - started > timeout:
                for child in root.children(recursive=True):
                    child.kill()
                proc.kill()
                proc.wait()
                return {"error": f"timed out after {timeout:.0f} s"}, peak / GIB
            total = 0
            with contextlib.suppress(psutil.NoSuchProcess):
                for member in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        total += member.memory_info().rss
            peak = max(peak, total)
            time.sleep(0.05)
        out.seek(0)
        err.seek(0)
        # CPU seconds of the child and every process it waited for (its workers): less
        # sensitive than wall time to other load on a shared machine.
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        lines = out.read().strip().splitlines()
        if proc.returncode != 0 or not lines:
            tail = err.read().strip().splitlines()[-5:]
            return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}, peak / GIB
        return {**json.loads(lines[-1]), "cpu_s": cpu_s}, peak / GIB


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def check(res: dict[str, Any], seed: int, target_n: int = TARGET_N) -> list[tuple[str, bool]]:
    """The targets that apply to one size's result (time and memory from ``target_n`` rows)."""
    checks: list[tuple[str, bool]] = []
    if res["size"] >= target_n:
        checks.append(
            (f"stages/rensa ≤ {TARGET_VS_RENSA}", res["ratio_vs_reference"] <= TARGET_VS_RENSA)
        )
        checks.append((f"peak ≤ {TARGET_RSS_GIB:.0f} GiB", res["peak_gib"] <= TARGET_RSS_GIB))
    recorded = RECORDED_CLEAN.get((res["size"], seed))
    if recorded is not None:
        checks.append(("clean output = recorded", res["clean_fingerprint"] == recorded))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workdir", type=Path, help="Where the JSONL files go (default: tempdir).")
    parser.add_argument("--keep", action="store_true", help="Keep the workdir and its files.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--timeout", type=float, default=1800, help="Seconds allowed per child (then killed)."
    )
    parser.add_argument("--results", type=Path, default=RESULTS_FILE)
    parser.add_argument(
        "--target-n",
        type=int,
        default=TARGET_N,
        help="Apply the time/memory targets from this size (a smoke run of the failure path).",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # internal
    parser.add_argument("--reference", type=Path, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args(argv)

    if args.child is not None:
        print(json.dumps(run_child(args.child, args.sizes[0])), flush=True)
        return 0
    if args.reference is not None:
        print(json.dumps(run_reference(args.reference, args.sizes[0])), flush=True)
        return 0

    made_tmp = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="data_bench_")) if made_tmp else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    cpu = cpu_model()
    print(
        f"data_bench: sizes {args.sizes}, {cpu}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, workdir {workdir}",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    failed = False
    try:
        for size in args.sizes:
            path = workdir / f"synthetic_{size}.jsonl"
            t0 = time.perf_counter()
            rows, planted = generate_rows(size, args.seed)
            gen_s = time.perf_counter() - t0
            write_jsonl(rows, path)
            del rows
            print(
                f"[{size:,}] generated in {gen_s:.1f} s ({path.stat().st_size / 2**20:.0f} MiB; "
                f"planted {planted}); running stages, then the rensa reference...",
                flush=True,
            )
            me = [sys.executable, str(Path(__file__).resolve())]
            res, peak = run_measured(
                [*me, "--child", str(path), "--sizes", str(size)], args.timeout
            )
            ref, ref_peak = run_measured(
                [*me, "--reference", str(path), "--sizes", str(size)], args.timeout
            )
            res.update(size=size, planted=planted, peak_gib=peak, reference_peak_gib=ref_peak)
            if "error" in res or "error" in ref:
                res["error"] = res.get("error") or f"reference: {ref['error']}"
                print(f"[{size:,}] ERROR {res['error']}", flush=True)
                failed = True
            else:
                res["reference_s"] = ref["reference_s"]
                res["ratio_vs_reference"] = res["total_s"] / ref["reference_s"]
                res["reference_cpu_s"] = ref["cpu_s"]
                res["reference_core_cpu_s"] = ref["reference_core_cpu_s"]
                res["cpu_ratio_vs_reference"] = res["total_cpu_s"] / ref["reference_core_cpu_s"]
                st = ", ".join(f"{k} {v:.1f} s" for k, v in res["stages"].items())
                print(
                    f"[{size:,}] stages: {st}; total {res['total_s']:.1f} s; rensa reference "
                    f"{ref['reference_s']:.1f} s; ratio {res['ratio_vs_reference']:.2f}; "
                    f"peak memory (process tree) {peak:.2f} GiB, reference {ref_peak:.2f} GiB; "
                    f"kept {res['rows_kept']:,}; clean fingerprint {res['clean_fingerprint']}; "
                    f"CPU seconds of the whole children (imports and data loading included): "
                    f"stages {res['cpu_s']:.0f}, reference {ref['cpu_s']:.0f}; CPU seconds of "
                    f"the timed parts alone (workers included): stages {res['total_cpu_s']:.1f}, "
                    f"reference {ref['reference_core_cpu_s']:.1f}, ratio "
                    f"{res['cpu_ratio_vs_reference']:.2f}",
                    flush=True,
                )
                res["checks"] = check(res, args.seed, args.target_n)
                for name, ok in res["checks"]:
                    print(f"[{size:,}]   {name}: {_verdict(ok)}", flush=True)
                    failed |= not ok
            results.append(res)
            if not args.keep:
                path.unlink(missing_ok=True)
    finally:
        if made_tmp and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "cpu": cpu,
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "targets": {
                    "n": TARGET_N,
                    "vs_rensa": TARGET_VS_RENSA,
                    "peak_gib": TARGET_RSS_GIB,
                },
                "results": results,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"results: {args.results}; {'FAIL' if failed else 'PASS'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
