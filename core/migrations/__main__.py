"""Alembic's command line on this package's configuration (there is no alembic.ini):

    python -m core.migrations revision --autogenerate --rev-id 0003 -m "what changes"
    python -m core.migrations check | current | history | upgrade head
    python -m core.migrations --url postgresql+psycopg://... current

The database is ``--url``, else the settings' one (``RAG_DB__URL`` or the SQLite file in
``RAG_DATA_DIR``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from alembic.config import CommandLine

from core import migrations


def main(argv: Sequence[str] | None = None) -> None:
    cli = CommandLine(prog="python -m core.migrations")
    cli.parser.add_argument(
        "--url", help="the database (default: the settings' RAG_DB__URL or SQLite file)"
    )
    options = cli.parser.parse_args(argv)
    if not hasattr(options, "cmd"):
        cli.parser.error("name a command (revision, check, current, history, upgrade ...)")
    url = options.url
    if url is None:
        from core.settings import Settings

        url = Settings().db_url
    cfg = migrations.config(url=url)
    cfg.cmd_opts = options
    if importlib.util.find_spec("ruff") is not None:  # a new revision gets our lint and format
        hooks = {"ruff_fix": "check --fix --quiet", "ruff_format": "format --quiet"}
        cfg.set_section_option("post_write_hooks", "hooks", ", ".join(hooks))
        for name, args in hooks.items():
            cfg.set_section_option("post_write_hooks", f"{name}.type", "module")
            cfg.set_section_option("post_write_hooks", f"{name}.module", "ruff")
            cfg.set_section_option(
                "post_write_hooks", f"{name}.options", f"{args} REVISION_SCRIPT_FILENAME"
            )
    cli.run_cmd(cfg, options)


if __name__ == "__main__":
    main()
