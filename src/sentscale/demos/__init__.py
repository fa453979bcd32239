"""In-context demonstrations as a pipeline stage: candidate sets, selection on STS-B dev.

A demonstration is a ``(sentence, word)`` pair (:class:`sentscale.prompts.Demo`). A ``select``
demonstration choice picks, for each model and prompt variant, the candidate whose demo gives
the best STS-B **dev** Spearman, and the test cells are then embedded with that demo (the
paper's protocol). Candidates come from four config-driven sources, pooled in this order:

* ``self_labelled``: N sentences sampled (seeded) from STS-B **train**, each labelled by a
  labeller causal LM with its own "one word": greedy decoding of the PromptEOL prompt, the text
  up to the closing ``"``, kept only if it is one word (see :func:`extract_word`);
* ``files``: user TSV files, one ``sentence<TAB>word`` per line (:func:`read_candidates`);
* ``icl_examples``: a file in the format of the authors' ``icl_examples.txt`` (one one-demo
  PromptEOL template per line; :func:`read_icl_examples`), by default the authors' own 300
  candidates, fetched by the workflow and pinned by sha256 (the paper's search);
* ``dictionary``: the shipped ``resources/dictionary_candidates.tsv``, handwritten dictionary
  definitions with their headword (the paper's second kind of candidate).

Duplicates are dropped (first kept), then ``max_candidates`` caps the pool with a seeded
sample kept in pool order. With ``selection: exhaustive`` (the default, the paper's search)
each candidate costs one pass over the STS-B dev sentences (3000 with every pair;
``dev_max_items`` subsamples pairs for CPU studies), plus one pass without a demonstration for
the baseline; ``selection: halving`` (our addition) scores every candidate on a small seeded dev
subset and only the best on larger ones, the last round on the full dev set. The model is
loaded once per selection job and shared by the per-candidate
:class:`~sentscale.embed.Embedder` objects.

Selection reads only STS-B dev (``sts-dev.csv``) and self-labelling only STS-B train
(``sts-train.csv``); :func:`check_selection_files` refuses anything else before any file is
read, so test data cannot leak into the choice.

Modules, one concern each: ``options`` (the ``select`` config block), ``candidates`` (candidate
files and the pool), ``icl_examples`` (the authors' candidate file), ``guard`` (the data guard
and the only data readers), ``labelling`` (self-labelling), ``selection`` (scoring on STS-B
dev, the selection job), ``halving`` (``selection: halving``), ``tokens`` (token ids shared
across candidates), ``ranking`` (ranking tables: order, write, the one reader, merge),
``summary`` (the summary table and the dev-score figure, drawn by
:func:`sentscale.plots.plot_candidates`).

The package is imported by the workflow at parse time: torch, transformers, pandas and
matplotlib are imported inside the functions that need them.
"""

from __future__ import annotations

from .candidates import (
    DICTIONARY_FILE,
    Candidate,
    dictionary_candidates,
    parse_candidates,
    pool_candidates,
    read_candidates,
    write_candidates,
)
from .guard import (
    LABELLING_FILES,
    SELECTION_FILES,
    SELECTION_TASK,
    check_selection_files,
    load_dev,
    stsb_train_sentences,
)
from .halving import halving_search, nested_subsets
from .icl_examples import (
    AUTHORS_SHA256,
    AUTHORS_URL,
    ICL_SOURCE,
    fetched_path,
    parse_icl_examples,
    read_icl_examples,
)
from .labelling import (
    extract_word,
    generate_labels,
    label_candidates_job,
    sample_sentences,
    self_label,
)
from .options import (
    ATTEMPTS_PER_CANDIDATE,
    CANDIDATE_KEYS,
    LABEL_PROMPT,
    SELECTIONS,
    SELF,
    CandidateSources,
    Halving,
    IclExamples,
    SelectOptions,
    SelfLabelled,
    estimated_candidates,
    estimated_full_passes,
    labeller_for,
    parse_select,
)
from .ranking import (
    HALVING_COLUMNS,
    RANKING_COLUMNS,
    merge_rankings,
    rank,
    read_ranking,
    select_best,
    write_ranking,
)
from .selection import (
    EncoderFactory,
    embedder_factory,
    gather_candidates,
    read_selected,
    score_candidates,
    search_candidates,
    select_demo_job,
)
from .summary import plot_dev_scores, summary_rows, write_summary
from .tokens import DemoTokens

__all__ = [
    "ATTEMPTS_PER_CANDIDATE",
    "AUTHORS_SHA256",
    "AUTHORS_URL",
    "CANDIDATE_KEYS",
    "Candidate",
    "DICTIONARY_FILE",
    "DemoTokens",
    "EncoderFactory",
    "HALVING_COLUMNS",
    "Halving",
    "ICL_SOURCE",
    "IclExamples",
    "LABELLING_FILES",
    "LABEL_PROMPT",
    "RANKING_COLUMNS",
    "SELECTION_FILES",
    "SELECTION_TASK",
    "SELECTIONS",
    "SelectOptions",
    "SELF",
    "SelfLabelled",
    "CandidateSources",
    "check_selection_files",
    "dictionary_candidates",
    "embedder_factory",
    "estimated_candidates",
    "estimated_full_passes",
    "extract_word",
    "fetched_path",
    "gather_candidates",
    "generate_labels",
    "halving_search",
    "label_candidates_job",
    "labeller_for",
    "load_dev",
    "merge_rankings",
    "nested_subsets",
    "parse_candidates",
    "parse_icl_examples",
    "parse_select",
    "plot_dev_scores",
    "pool_candidates",
    "rank",
    "read_candidates",
    "read_icl_examples",
    "read_ranking",
    "read_selected",
    "sample_sentences",
    "score_candidates",
    "search_candidates",
    "select_best",
    "select_demo_job",
    "self_label",
    "stsb_train_sentences",
    "summary_rows",
    "write_candidates",
    "write_ranking",
    "write_summary",
]
