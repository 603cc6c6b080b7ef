"""Pieces every ``yuqing`` sub-command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="YUQING_CONFIG",
        help="YAML config file (default: $YUQING_CONFIG).",
        show_default=False,
    ),
]
"""The ``--config`` option of every command."""
