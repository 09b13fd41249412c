"""The ``{media type: Loader}`` registry, filled from this package's format modules.

Every public module of ``ingest.loaders`` (no leading underscore) is a format and
defines ``LOADER``: adding a format is adding one module (and its test); nothing else
lists the formats. Shared machinery lives in the underscore modules.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import PurePath

from ingest.loaders._base import Loader


def _discover() -> dict[str, Loader]:
    import ingest.loaders as package

    found: dict[str, Loader] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        loader = getattr(module, "LOADER", None)
        if not isinstance(loader, Loader):
            raise RuntimeError(f"{module.__name__} defines no LOADER (a format module must)")
        if loader.media_type in found:
            raise RuntimeError(f"two loaders for {loader.media_type}: {info.name} and another")
        found[loader.media_type] = loader
    return found


LOADERS: dict[str, Loader] = _discover()
BY_EXTENSION: dict[str, Loader] = {
    ext: loader for loader in LOADERS.values() for ext in loader.extensions
}
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(BY_EXTENSION)
# .jsonl/.ndjson are corpora (one document per line, ``ingest.jsonl``), not a loader's format,
# yet a file ingested under those names is read: the list a refusal names includes them.
SUPPORTED_LIST = ", ".join(sorted(SUPPORTED_EXTENSIONS | {".jsonl", ".ndjson"}))


def loader_for_extension(source: str) -> Loader | None:
    return BY_EXTENSION.get(PurePath(source).suffix.lower())
