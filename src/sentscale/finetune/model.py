"""The model side of fine-tuning: the base model as trained (QLoRA on CUDA, LoRA on CPU) and
its trainable LoRA wrapper."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .. import models
from ..errors import ConfigError
from ..models import ModelSpec
from .recipe import FinetuneRecipe


def lora_config(recipe: FinetuneRecipe):
    """LoRA on every linear layer except the output layer (peft's ``all-linear``)."""
    from peft import LoraConfig

    return LoraConfig(
        r=recipe.lora_r,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        target_modules="all-linear",
        bias="none",
    )


def check_quantization(quantization: str | None, device: str) -> None:
    """QLoRA needs CUDA and bitsandbytes; anything else is a ConfigError before loading."""
    if quantization is None:
        return
    if not device.startswith("cuda"):
        raise ConfigError(
            f"finetune.quantization {quantization!r} (QLoRA) needs a CUDA GPU, but the device "
            f"is {device!r}; set finetune.quantization: null for plain LoRA on CPU"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            f"finetune.quantization {quantization!r} (QLoRA) needs bitsandbytes: pip install "
            "bitsandbytes (GPU only), or set finetune.quantization: null"
        )


def check_mixed_precision(mixed_precision: str | None, device: str) -> None:
    """fp16/bf16 autocast of training is the original's GPU setting (``Trainer(fp16=True)``);
    on CPU it is a ConfigError before loading (CPU fp16 autocast covers few ops and is slow)."""
    if mixed_precision is not None and not device.startswith("cuda"):
        raise ConfigError(
            f"finetune.mixed_precision {mixed_precision!r} needs a CUDA GPU, but the device is "
            f"{device!r}; set finetune.mixed_precision: null on CPU"
        )


def load_base(
    spec: ModelSpec, *, models_dir: str | Path, recipe: FinetuneRecipe, device: str = "auto"
):
    """``(model, tokenizer)`` loaded as the embedder loads them, weights in ``recipe.dtype``;
    4-bit NF4 + double quantisation when the recipe asks for QLoRA (CUDA only), computing in
    ``recipe.dtype`` (the original: ``bnb_4bit_compute_dtype`` and ``torch_dtype`` float32,
    ``ft_llm.py`` l.297-315)."""
    device = models.resolve_device(device)
    quantization = recipe.quantization
    check_quantization(quantization, device)
    check_mixed_precision(recipe.mixed_precision, device)
    options = None
    if quantization == "4bit":
        options = {"bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}
    model, tokenizer = models.load_causal_lm(
        spec,
        models_dir=models_dir,
        dtype=recipe.dtype,
        device=device,
        quantization=quantization,
        quantization_options=options,
    )
    return model, tokenizer


def add_lora(model, recipe: FinetuneRecipe):
    """Wrap ``model`` (a causal LM) in a trainable peft model; returns the PeftModel."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    checkpointing = recipe.gradient_checkpointing
    if recipe.quantization is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    elif checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    return get_peft_model(model, lora_config(recipe))
