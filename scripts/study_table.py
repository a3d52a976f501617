"""The table of scripts/study-as-run.sh: one Markdown table from the results.json of each
`vog experiment` directory given (a recipe each). Rows: recipe, question, gradients (stage),
VoG target; cells: AUROC oriented by the paper's claim (high VoG = harder / shuffled) with its
95% interval and vog's verdict. Below 0.5 is the inverse of the paper's direction."""

import json
import os
import sys

VERDICT = {
    "higher_is_harder": "paper's direction",
    "higher_is_easier": "inverse",
    "not_enough_evidence": "neither",
}
QUESTIONS = {"memorization": "train", "difficulty": "test"}
COLUMNS = {"vog": "logit", "vog_logprob": "logprob"}


def stage_name(stage):
    if isinstance(stage, dict):
        (kind, value), = stage.items()
        return f"{kind} {value}"
    return str(stage)


# The authors' own reduction (pixel mean of the per-pixel standard deviation) without class
# normalization, on the captured gradients: the script's VoG exactly.
OFFICIAL = {"vog_raw": "logit, raw", "vog_raw_logprob": "logprob, raw"}


def stages(d, results):
    """(split, stage label, epochs, evaluation, columns) of every scoring of a recipe."""
    for stage in results["stages"]:
        yield stage["split"], stage_name(stage["stage"]), stage["epochs"], stage["evaluation"], COLUMNS
    official = os.path.join(d, "official-captured-eval", "eval.json")
    if os.path.exists(official):
        with open(official) as f:
            evaluation = json.load(f)
        epochs = next(s["epochs"] for s in results["stages"] if s["stage"] == "captured")
        yield "train", "captured, --reduce official", epochs, evaluation, OFFICIAL


def cells(d, results):
    for split, stage, epochs, evaluation, columns in stages(d, results):
        for board in evaluation["leaderboards"]:
            if QUESTIONS.get(board["question"]) != split:
                continue
            best = next((e for e in board["entries"] if not e.get("restates_outcome")), None)
            for entry in board["entries"]:
                if entry["score"] in columns and "auroc" in entry:
                    yield board, stage, epochs, columns[entry["score"]], entry, best


def main(dirs):
    print("| recipe | test acc | training | question | gradients (epochs) | target | AUROC [95%] | direction | leader of the board |")
    print("|---|---|---|---|---|---|---|---|---|")
    for d in dirs:
        with open(os.path.join(d, "results.json")) as f:
            results = json.load(f)
        recipe = os.path.basename(os.path.normpath(d))
        acc = results.get("final_test_accuracy")
        acc = f"{100 * acc:.1f}%" if acc is not None else "-"
        secs = f"{results['training_seconds']:.0f} s"
        for board, stage, epochs, target, e, best in cells(d, results):
            lead = f"{best['score']} {best['auroc']:.3f}" if best and "auroc" in best else "-"
            print(
                f"| {recipe} | {acc} | {secs} | {board['question']} ({board['positives']}/{board['examples']}) "
                f"| {stage} ({','.join(map(str, epochs))}) | {target} "
                f"| {e['auroc']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}] "
                f"| {VERDICT.get(e['verdict'], e['verdict'])} | {lead} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
