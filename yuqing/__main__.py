"""``python -m yuqing`` — the same as the ``yuqing`` command (used for child processes)."""

from yuqing.cli import app

app(prog_name="yuqing")
