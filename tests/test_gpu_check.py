"""benchmarks/gpu_check.py at tiny sizes on CPU: every part runs and its numbers are sane.

The script is what a lent GPU machine runs (OPT-1.3B/6.7B architectures there); here it runs
the same code paths on two tiny OPT configurations, so it keeps working between GPU sessions.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_check.py"


def run_check(tmp_path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--device", "cpu", "--json", str(out), *extra],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return run_check(tmp_path_factory.mktemp("gpu_check"))


def test_every_part_runs_and_every_check_passes(tiny_run):
    proc, result = tiny_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result["ok"] is True
    assert result["skipped"] == []
    assert result["checks"] and all(c["ok"] for c in result["checks"])
    assert result["meta"]["tiny"] is True and result["meta"]["device"] == "cpu"
    assert list(result["models"]) == ["opt-tiny-a", "opt-tiny-b"]
    assert "checks:" in proc.stdout and "== summary" in proc.stdout


def test_matmul_peak_measured(tiny_run):
    peak = tiny_run[1]["matmul_peak"]
    assert peak["bf16"]["tflops"] > 0 and peak["fp32"]["tflops"] > 0
    assert "tflops" in peak["fp16"] or peak["fp16"]["skipped"]
    assert "CUDA" in peak["tf32"]["skipped"]


def test_throughput_and_agreement(tiny_run):
    for name, entry in tiny_run[1]["models"].items():
        assert entry["params"] > entry["linear_params"] > 0, name
        through = entry["throughput"]
        for label in ("fp32", "bf16"):
            row = through[label]
            assert row["sentences_per_s"] > 0 and row["tokens_per_s"] > row["sentences_per_s"]
            assert row["tflops"] > 0 and 0 < row["pct_bf16_peak"]
            assert row["positions_computed"] > 0 and row["sentences"] == 96
            assert row["memory"]["rss_peak_mb"] >= row["memory"]["rss_before_mb"] > 0
        # fp16 on CPU: measured, or skipped with its reason
        assert through["fp16"].get("sentences_per_s", 0) > 0 or through["fp16"]["skipped"]
        assert "CUDA" in through["tf32"]["skipped"]
        bf16 = entry["agreement"]["bf16"]
        assert bf16["sentences"] == 96
        assert 0.99 < bf16["min_cos"] <= bf16["mean_cos"] <= 1.000001


def test_device_map_load_placed_every_parameter(tiny_run):
    models = tiny_run[1]["models"]
    first = models["opt-tiny-a"]
    dm = first["device_map"]
    assert dm["placement_params"] == {"cpu": first["params"]}
    assert dm["equal_to_saved"] is True and dm["shards"] > 1 and dm["load_s"] > 0
    assert dm["load_causal_lm_devices"] == ["cpu"]
    assert dm["load_causal_lm_min_cos"] >= 0.9999
    assert "first model only" in models["opt-tiny-b"]["device_map"]["skipped"]


def test_gradient_cached_lora_step(tiny_run):
    for name, entry in tiny_run[1]["models"].items():
        lora = entry["lora_step"]
        assert lora["recipe"]["micro_batch_size"] < lora["recipe"]["batch_size"], name  # cached
        assert lora["recipe"]["lora_r"] == 8 and lora["recipe"]["quantization"] is None
        steps = lora["steps"]
        assert len(steps) == 2 and all(math.isfinite(s["loss"]) for s in steps)
        first, second = steps[0]["grads"], steps[1]["grads"]
        for grads in (first, second):  # the base model is frozen: only LoRA params learn
            assert grads["non_lora_trainable"] == 0 and grads["non_lora_with_grad"] == 0
            assert grads["finite"] and grads["lora_grad_norm"] > 0
        assert first["lora_B"] == first["lora_B_nonzero"] > 0
        assert first["lora_A_nonzero"] == 0  # lora_B starts at zero (peft), so A has no grad
        assert first["lora_B_weight_norm_after_step"] > 0  # the step moved lora_B ...
        assert second["lora_A"] == second["lora_A_nonzero"] > 0  # ... so A learns at step 2
        assert lora["base_unchanged"] is True
        assert lora["trainable_params"] > 0 and lora["step_s"] > 0
        assert lora["memory"]["rss_peak_mb"] > 0


def test_time_budget_skips_parts_with_a_message(tmp_path):
    proc, result = run_check(tmp_path, "--time-budget", "1", "--models", "opt-tiny-a")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result["skipped"] and all("time budget" in m for m in result["skipped"])
    assert result["models"]["opt-tiny-a"]["skipped"] == "time budget"
    assert "skipped, time budget" in proc.stdout
