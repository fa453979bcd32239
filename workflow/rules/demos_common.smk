# Glue for rules/demos.smk: config -> selection jobs (the logic lives in sentscale.demos).
import math

from sentscale import demos as sentscale_demos


SELECT_CELLS = list(STUDY.selection_cells())
SELECT_CHOICES = sorted({cell.demo for cell in SELECT_CELLS})
# The zero-shot choice the summary measures gains against (None: the study has none).
NO_DEMO_CHOICE = next((n for n, c in STUDY.demos.items() if c.kind == "none"), None)


def _select(demo):
    return STUDY.demos[demo].select


def label_sets():
    """(choice, labeller) of every self-labelled candidate set the study needs."""
    return sorted(
        {
            (cell.demo, labeller)
            for cell in SELECT_CELLS
            for labeller in [sentscale_demos.labeller_for(_select(cell.demo), cell.model)]
            if labeller is not None
        }
    )


def self_labelled_tsv(wildcards):
    """The self-labelled candidate set of a select cell ([] when it has none)."""
    labeller = sentscale_demos.labeller_for(_select(wildcards.demo), wildcards.model)
    if labeller is None:
        return []
    return [f"results/demos/candidates/{wildcards.demo}/{labeller}.tsv"]


def select_params(wildcards):
    """Everything that determines a selection; a change here reruns only its job."""
    cell = cell_of(wildcards)
    select = _select(cell.demo)
    return {
        "model": cell.model,
        "prompt": STUDY.prompts[cell.prompt].to_dict(),
        "choice": cell.demo,
        "select": select,
        "labeller": sentscale_demos.labeller_for(select, cell.model),
        "embed": dict(STUDY.embed),
        "registry": dict(STUDY.registry),
    }


def select_scale(wildcards):
    """Selection runtime in embed-job runtimes: one pass over the dev sentences per
    candidate plus the no-demonstration baseline, against the ~200k sentences of an embed
    job of the paper's grid (all 14 tasks), which the per-model runtime is sized for."""
    select = _select(wildcards.demo)
    passes = sentscale_demos.estimated_candidates(select) + 1
    sentences = 2 * (select["dev_max_items"] or 1500)
    return max(1, math.ceil(passes * sentences / 200_000))


def _cells_of(wildcards):
    """Select cells of one prompt and select choice (one per model)."""
    return [c for c in SELECT_CELLS if (c.prompt, c.demo) == (wildcards.prompt, wildcards.demo)]


def demo_outputs():
    """What `rule all` needs from this file (nothing without a `select` demo choice)."""
    if not SELECT_CELLS:
        return []
    pairs = sorted({(c.model, c.prompt) for c in SELECT_CELLS})
    plots = sorted({(c.prompt, c.demo) for c in SELECT_CELLS})
    return (
        [f"results/demos/{m}/{p}/ranking.tsv" for m, p in pairs]
        + [f"results/demos/plots/{p}/{d}.png" for p, d in plots]
        + ["results/demos/summary.csv", "results/demos/summary.md"]
    )
