"""Five seeds of cls24 nofluency from the seed 0-2 and seed 3-4 runs (row means weighted by seeds)."""
import json, sys
import numpy as np
from sftops.mlops.ablation import ArmResult, compare_arms
d = "bench/results/ablation/2026-11-30b/"
a, b = "cls24_s60_3seeds_nofluency_n8", "cls24_s60_seeds34_nofluency_n8"
ra, rb = (json.load(open(d + n + ".rows.json")) for n in (a, b))
sa, sb = (json.load(open(d + n + ".json")) for n in (a, b))
arms = {}
for arm in ("with_augmentation", "without_augmentation"):
    f1 = (3 * np.array(ra[arm]["row_scores"]["token_f1"]) + 2 * np.array(rb[arm]["row_scores"]["token_f1"])) / 5
    loss = (3 * np.array(ra[arm]["row_loss"]) + 2 * np.array(rb[arm]["row_loss"])) / 5
    per_seed = sa["arms"][arm]["per_seed"] + sb["arms"][arm]["per_seed"]
    arms[arm] = ArmResult(arm, 0, {}, {"token_f1": list(f1)}, list(loss), None, 0.0, per_seed)
c = compare_arms(arms["with_augmentation"], arms["without_augmentation"], "token_f1", 1000)
json.dump(c, sys.stdout, indent=2)
