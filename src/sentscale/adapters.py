"""LoRA adapters of fine-tuned (PromptEOL+CSE) models: applying one, and its record.

An adapter directory holds peft's ``adapter_config.json`` + ``adapter_model.safetensors`` and
:data:`ADAPTER_RECORD`, what it was trained with (:mod:`sentscale.finetune` writes it). Sits at
the models layer: the embedder (``load_encoder(..., adapter=...)``) and the cell jobs use it
without importing the training code.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import io
from .errors import ModelError

#: The demonstration slot of a fine-tuned cell: ``results/.../<model>/<prompt>/cse``. Like the
#: paper's settings (PromptEOL, +ICL, +CSE), ``cse`` sits where the demonstration choice does.
CSE_DEMO = "cse"
#: Written into the adapter directory beside peft's files: what the adapter was trained with.
ADAPTER_RECORD = "sentscale-finetune.json"


def apply_adapter(model, adapter: str | Path):
    """``model`` (a loaded base causal LM) with the LoRA adapter in ``adapter`` applied (not
    merged, so a 4-bit base works too); returns the causal LM, ready for the Embedder."""
    from peft import PeftModel

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise ModelError(
            f"{adapter}: not a LoRA adapter directory (no adapter_config.json); run the "
            "finetune rule first"
        )
    peft_model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    base = peft_model.get_base_model()  # the causal LM, its linear layers now LoRA layers
    base.eval()
    return base


def save_adapter(peft_model, directory: Path, record: Mapping[str, Any]) -> None:
    """peft's adapter files plus :data:`ADAPTER_RECORD` (``record``) in ``directory``."""
    peft_model.save_pretrained(str(directory))
    io.write_json(directory / ADAPTER_RECORD, record)


def read_adapter_record(adapter: str | Path) -> dict[str, Any]:
    """What an adapter directory says about its training (best step, dev score, recipe)."""
    path = Path(adapter) / ADAPTER_RECORD
    return io.read_json(path) if path.is_file() else {}
