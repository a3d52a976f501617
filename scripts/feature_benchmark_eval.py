"""Scores the features measurement (docs/results.md) against what was planted.

  python scripts/feature_benchmark_eval.py RUN SCORES_CSV PLANTED_CSV

RUN's crossval/ holds the output of `vog crossval --features`; SCORES_CSV is `vog score
--run RUN --split train`'s; PLANTED_CSV is feature_benchmark_data.py's planted.csv.
Prints label_issue precision and recall against the shuffled labels, the AUROC of
oof_prob, and the recall of the planted outliers, duplicates and leaks.
"""
import csv, sys
import numpy as np

run, scores_csv, planted_csv = sys.argv[1:4]
rows = list(csv.DictReader(open(scores_csv)))
noisy = np.array([r["noisy"] == "true" for r in rows])
issue = np.array([r["label_issue"] == "true" for r in rows])
prob = np.array([float(r["oof_prob"]) for r in rows])
tp = (issue & noisy).sum()
print(f"label_issue: {issue.sum()} flagged of {len(rows)}, precision {tp / max(issue.sum(), 1):.3f}, "
      f"recall {tp / noisy.sum():.3f} ({noisy.sum()} shuffled labels)")

def auroc(score, pos):
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score)); ranks[order] = np.arange(1, len(score) + 1)
    # average ranks of ties
    _, inv, counts = np.unique(score, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, ranks); ranks = (sums / counts)[inv]
    n1, n0 = pos.sum(), (~pos).sum()
    return (ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)

print(f"AUROC of low oof_prob for a shuffled label: {auroc(-prob, noisy):.4f}")
planted = list(csv.DictReader(open(planted_csv)))
out = {r["id"]: float(r["outlier"]) for r in csv.DictReader(open(f"{run}/crossval/neighbours.csv")) if r["split"] == "train"}
sets = {}
for r in csv.DictReader(open(f"{run}/crossval/near-duplicates.csv")):
    sets[r["id"]] = r["set"]
ids = list(out)
vals = np.array([out[i] for i in ids])
outliers = {p["id"] for p in planted if p["kind"] == "outlier"}
is_out = np.array([i in outliers for i in ids])
top = set(np.array(ids)[np.argsort(-vals)[: len(outliers)]])
print(f"outliers: {len(top & outliers)} of {len(outliers)} planted in the top {len(outliers)} by outlier; "
      f"AUROC {auroc(vals, is_out):.4f}")
for kind in ("exact", "near", "leak"):
    cases = [p for p in planted if p["kind"] == kind]
    found = sum(1 for p in cases if p["id"] in sets and sets.get(p["id"]) == sets.get(p["of"]))
    print(f"{kind} duplicates: {found} of {len(cases)} in one set with the image they copy")
n_sets = len(set(sets.values()))
print(f"sets: {n_sets}, images in sets: {len(sets)}")
