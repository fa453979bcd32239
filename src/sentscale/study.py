"""A study configuration as a grid of cells, with the semantic checks a JSON schema cannot do.

The Snakemake workflow validates the config against ``workflow/schemas/config.schema.yaml``
(structure, types) and then calls :meth:`Study.from_config`, which builds the typed options
(sentscale.options) and the study's model registry once, and checks what needs the rest of the
package: registry names, prompt templates, task names and data files. Every problem is collected
into one :class:`ConfigError` so the user fixes them in one go, before any job runs or any model
is loaded. Everything downstream reads the study's fields; nothing reads the raw config again.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import data, finetune, prompts
from .demos.options import SelectOptions
from .errors import ConfigError, DataError, ModelError, SentscaleError
from .models import ModelSpec, Registry
from .options import (
    AggregateOptions,
    EmbedOptions,
    EvaluateOptions,
    Options,
    ResourceOptions,
    TrackingOptions,
)

#: Prompt and demonstration names used for sentence-transformers baselines (no prompt at all).
NATIVE_PROMPT = "native"
NO_DEMO = "none"
#: The demonstration slot of fine-tuned cells, ``(<model>, <finetune.prompt>, cse)``: the model
#: with the contrastive LoRA adapter trained by the ``finetune`` rule (sentscale.finetune).
CSE_DEMO = finetune.CSE_DEMO


@dataclass(frozen=True, order=True)
class Cell:
    """One point of the grid: a model embedded with a prompt variant and a demonstration choice."""

    model: str
    prompt: str
    demo: str

    @property
    def path(self) -> str:
        """Relative path fragment used for every output of this cell."""
        return f"{self.model}/{self.prompt}/{self.demo}"


@dataclass(frozen=True)
class DemoChoice:
    """How a cell gets its in-context demonstrations.

    kind: ``none`` (zero-shot), ``fixed`` (one demo for every model), ``per_model`` (a demo per
    model, e.g. the paper's), ``select`` (chosen per model and prompt on STS-B dev).
    """

    name: str
    kind: str
    fixed: tuple[prompts.Demo, ...] = ()
    per_model: Mapping[str, prompts.Demo] = field(default_factory=dict)
    select: SelectOptions | None = None


@dataclass(frozen=True)
class Study:
    name: str
    data_dir: Path
    models_dir: Path
    models: tuple[str, ...]
    baselines: tuple[str, ...]
    prompts: Mapping[str, prompts.PromptVariant]
    demos: Mapping[str, DemoChoice]
    tasks: tuple[str, ...]
    embed: EmbedOptions
    evaluate: EvaluateOptions
    resources: ResourceOptions
    tracking: TrackingOptions
    aggregate: AggregateOptions
    #: the study's models (built-in entries plus the config's ``registry:`` block)
    registry: Registry
    #: the config's ``registry:`` block, canonical: what jobs get to rebuild ``registry``
    registry_overrides: Mapping[str, Any]
    #: model -> resolved fine-tuning recipe (``finetune.models``); empty: no fine-tuning
    finetune: Mapping[str, finetune.FinetuneRecipe] = field(default_factory=dict)
    finetune_prompt: str = "eol"
    finetune_data: Path | None = None

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        check_data: bool = True,
        to_fetch: Collection[str] = (),
    ) -> Study:
        """The study of ``config``; ConfigError lists every problem. ``check_data``: check
        that data_dir and finetune.data exist, except the keys in ``to_fetch`` (the workflow's
        fetch rules provide and verify them: rules/fetch.smk)."""
        problems: list[str] = []
        overrides = canonical(dict(config.get("registry") or {}))
        try:
            registry = Registry.load(overrides)
        except ModelError as err:
            problems.append(f"registry: {err}")
            registry = Registry.load()

        model_names = tuple(config["models"])
        baselines = tuple(config.get("baselines") or ())
        problems += _check_kinds(registry, "models", model_names, "causal-lm")
        problems += _check_kinds(registry, "baselines", baselines, "sentence-transformers")

        variants = {}
        for name, override in config["prompts"].items():
            try:
                variants[name] = prompts.get_variant(name, override or None)
            except SentscaleError as err:
                problems.append(f"prompts.{name}: {err}")
        if NATIVE_PROMPT in variants:
            problems.append(f"prompts: the name {NATIVE_PROMPT!r} is reserved for baselines")

        demos = {}
        for name, spec in config["demos"].items():
            try:
                demos[name] = _demo_choice(name, spec or {}, model_names, registry)
            except ConfigError as err:
                problems.append(str(err))

        if CSE_DEMO in config["demos"]:
            problems.append(f"demos: the name {CSE_DEMO!r} is reserved for fine-tuned cells")
        if demos.get(NO_DEMO, DemoChoice(NO_DEMO, "none")).kind != "none":
            problems.append(_reserved_none(demos[NO_DEMO], demos))
        finetune_block = dict(config.get("finetune") or {})
        tuned = _finetune_recipes(finetune_block, model_names, problems)
        finetune_prompt = finetune_block.get("prompt", "eol")
        finetune_data = finetune_block.get("data")
        if finetune_block.get("models"):
            problems += _check_finetune_inputs(
                finetune_prompt,
                finetune_data,
                variants,
                check_data=check_data and "finetune.data" not in to_fetch,
            )

        tasks = tuple(config["tasks"])
        unknown = [t for t in tasks if t not in data.ALL_TASKS]
        if unknown:
            problems.append(
                f"tasks: unknown task(s) {unknown}; expected names from {list(data.ALL_TASKS)}"
            )
        data_dir = Path(config["data_dir"])
        if check_data and not unknown and "data_dir" not in to_fetch:
            try:
                data.check_data_dir(data_dir, _tasks_read(tasks, demos, bool(tuned)))
            except DataError as err:
                problems.append(f"data_dir: {err}")

        blocks: dict[str, Options] = {}
        for key, cls_ in OPTION_BLOCKS.items():
            try:
                blocks[key] = cls_.from_mapping(config.get(key), key)
            except (ConfigError, TypeError) as err:
                problems.append(str(err))
        if "embed" in blocks:
            problems += [
                f"embed.model_dtype.{name}: not one of the study's models {model_names}"
                for name in blocks["embed"].model_dtype
                if name not in model_names
            ]

        if problems:
            raise ConfigError("invalid study configuration:\n  - " + "\n  - ".join(problems))
        return cls(
            name=config.get("study", "default"),
            data_dir=data_dir,
            models_dir=Path(config.get("models_dir", "resources/models")),
            models=model_names,
            baselines=baselines,
            prompts=variants,
            demos=demos,
            tasks=tasks,
            **blocks,
            registry=registry,
            registry_overrides=overrides,
            finetune=tuned,
            finetune_prompt=finetune_prompt,
            finetune_data=Path(finetune_data) if tuned else None,
        )

    def tasks_read(self) -> tuple[str, ...]:
        """Tasks whose files the study reads (its tasks, plus STS-B dev for selection and
        fine-tuning checkpoints): what the data check and the SentEval fetch verify."""
        return _tasks_read(self.tasks, self.demos, bool(self.finetune))

    def cells(self) -> Iterator[Cell]:
        """Every cell of the grid: causal LMs x prompts x demos, then one row per baseline."""
        for model in self.models:
            for prompt, variant in self.prompts.items():
                if not variant.takes_demos:
                    # A demonstration is a filled template plus its word: raw-sentence variants
                    # (last, avg) have no template to fill, so they get one zero-shot cell.
                    yield Cell(model, prompt, NO_DEMO)
                    continue
                for demo in self.demos:
                    yield Cell(model, prompt, demo)
        yield from self.tuned_cells()
        for baseline in self.baselines:
            yield Cell(baseline, NATIVE_PROMPT, NO_DEMO)

    def tuned_cells(self) -> Iterator[Cell]:
        """The fine-tuned cells: one per ``finetune.models`` entry, zero-shot, demo ``cse``."""
        for model in self.models:
            if model in self.finetune:
                yield Cell(model, self.finetune_prompt, CSE_DEMO)

    def selection_cells(self) -> Iterator[Cell]:
        """Cells whose demonstration is chosen on STS-B dev."""
        return (
            c for c in self.cells() if c.demo in self.demos and self.demos[c.demo].kind == "select"
        )

    def fixed_demos(self, cell: Cell) -> tuple[prompts.Demo, ...]:
        """The demonstrations of a cell known from config alone (``select`` cells: see rules)."""
        if cell.prompt == NATIVE_PROMPT or cell.demo not in self.demos:
            return ()
        choice = self.demos[cell.demo]
        if choice.kind == "fixed":
            return choice.fixed
        if choice.kind == "per_model":
            return (choice.per_model[cell.model],)
        return ()

    def all_models(self) -> tuple[str, ...]:
        return self.models + self.baselines

    def spec(self, model: str) -> ModelSpec:
        """A model's registry entry (ModelError for a name the study's registry lacks)."""
        return self.registry[model]

    def model_params(self) -> dict[str, int]:
        """Parameter count of every model of the study (tables and figures sort by it)."""
        return {name: self.registry[name].params for name in self.all_models()}

    def model_families(self) -> dict[str, str]:
        """Family of every model of the study (a scaling line joins one family's sizes); a
        registry entry without one is its own family."""
        return {name: self.registry[name].family or name for name in self.all_models()}


def _check_kinds(registry: Registry, key: str, names: tuple[str, ...], kind: str) -> list[str]:
    """Problems with ``names`` (config key ``key``): unknown to the registry, or not ``kind``."""
    problems = []
    for name in names:
        try:
            spec = registry[name]
        except ModelError as err:
            problems.append(f"{key}: {err}")
            continue
        if spec.kind != kind:
            problems.append(f"{key}: model {name!r} is a {spec.kind}, expected a {kind}")
    return problems


def _finetune_recipes(
    block: Mapping[str, Any], model_names: tuple[str, ...], problems: list[str]
) -> dict[str, finetune.FinetuneRecipe]:
    """model -> resolved recipe for every ``finetune.models`` entry (problems appended)."""
    tuned = {}
    for name in block.get("models") or {}:
        if name not in model_names:
            problems.append(
                f"finetune.models: {name!r} is not one of the study's models "
                f"{list(model_names)} (its untuned cells are the comparison)"
            )
            continue
        try:
            tuned[name] = finetune.resolve_recipe(block, name)
        except ConfigError as err:
            problems.append(str(err))
    return tuned


def _check_finetune_inputs(
    prompt: str,
    triplets: str | None,
    variants: Mapping[str, prompts.PromptVariant],
    *,
    check_data: bool,
) -> list[str]:
    """Problems with the trained prompt and the NLI triplet file of a fine-tuning block."""
    problems = []
    if prompt not in variants:
        problems.append(
            f"finetune.prompt: {prompt!r} is not one of the study's prompts {list(variants)}"
        )
    elif not variants[prompt].takes_demos:
        problems.append(
            f"finetune.prompt: {prompt!r} has no template; expected a "
            "PromptEOL-style prompt such as 'eol'"
        )
    if not triplets:
        problems.append(
            "finetune.data: missing; expected the NLI triplet CSV (sent0,sent1,hard_neg)"
            ", e.g. SimCSE's nli_for_simcse.csv"
        )
    elif check_data and not Path(triplets).is_file():
        problems.append(f"finetune.data: {triplets} is not a file")
    return problems


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted, recursively.

    Snakemake compares a job's params with the last run's by their text, so two configs that
    differ only in key order (a YAML re-saved by another tool) must give the same params.
    """
    if isinstance(value, Mapping):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    return value


#: Config blocks that are typed options (sentscale.options), by config key.
OPTION_BLOCKS: dict[str, type[Options]] = {
    "embed": EmbedOptions,
    "evaluate": EvaluateOptions,
    "resources": ResourceOptions,
    "tracking": TrackingOptions,
    "aggregate": AggregateOptions,
}


def _demo_choice(
    name: str, spec: Mapping[str, Any], model_names: tuple[str, ...], registry: Registry
) -> DemoChoice:
    keys = set(spec)
    if not keys:
        return DemoChoice(name, "none")
    if keys == {"sentence", "word"}:
        return DemoChoice(name, "fixed", fixed=(prompts.Demo(spec["sentence"], spec["word"]),))
    if keys == {"per_model"}:
        missing = [m for m in model_names if m not in spec["per_model"]]
        if missing:
            raise ConfigError(f"demos.{name}.per_model: no demonstration for model(s) {missing}")
        per_model = {
            m: prompts.Demo(d["sentence"], d["word"]) for m, d in spec["per_model"].items()
        }
        return DemoChoice(name, "per_model", per_model=per_model)
    if keys == {"select"}:
        from .demos import parse_select  # defaults and semantic checks of the select block

        select = parse_select(name, spec["select"], model_names, registry)
        return DemoChoice(name, "select", select=select)
    raise ConfigError(
        f"demos.{name}: expected {{}} (none), {{sentence, word}}, {{per_model: ...}} or "
        f"{{select: ...}}, got keys {sorted(keys)}"
    )


#: What a demo choice of each kind holds, and a name to give it instead of ``none``.
_HOLDS = {
    "fixed": ("a fixed demonstration ({sentence, word})", "one-demo"),
    "per_model": ("a demonstration per model ({per_model: ...})", "per-model"),
    "select": ("a selection ({select: ...})", "selected"),
}


def _reserved_none(choice: DemoChoice, demos: Mapping[str, DemoChoice]) -> str:
    """The problem of a ``none`` choice that holds a demonstration. ``none`` labels every
    zero-shot cell (raw-sentence variants such as ``avg``, baselines): such a choice would be
    prepended to those cells too and still read ``none`` in every table."""
    holds, base = _HOLDS[choice.kind]
    suggestion, n = base, 1
    while suggestion in demos:
        n += 1
        suggestion = f"{base}-{n}"
    return (
        f"demos.{NO_DEMO}: the name {NO_DEMO!r} is reserved for no demonstration "
        f"({NO_DEMO}: {{}}); it holds {holds}: give it another name, e.g. {suggestion!r}"
    )


def _tasks_read(
    tasks: tuple[str, ...], demos: Mapping[str, DemoChoice], tuned: bool = False
) -> tuple[str, ...]:
    """Tasks whose files the study reads: selection (and fine-tuning checkpoints) read STS-B
    dev (and selection train, for candidates)."""
    reads_dev = tuned or any(d.kind == "select" for d in demos.values())
    if reads_dev and "STSBenchmark-dev" not in tasks:
        return tasks + ("STSBenchmark-dev",)
    return tasks
