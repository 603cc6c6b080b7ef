"""``yuqing users``: make password hashes for ``dashboard.users`` in the config file.

Registered in ``yuqing/cli.py`` as the ``users`` sub-command. Passwords are
read from a hidden prompt (or, with ``--stdin``, one line of standard input,
for scripts) — never from the command line, where they would land in the
shell history and the process list.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dashboard.auth import hash_password, verify_password

app = typer.Typer(
    help="Dashboard users: password hashes for dashboard.users in the config file.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

MIN_PASSWORD_LENGTH = 10


@app.command("hash-password")
def hash_password_command(
    stdin: Annotated[
        bool, typer.Option("--stdin", help="read the password from one line of standard input")
    ] = False,
) -> None:
    """Print a scrypt hash of a password, to paste as a user's ``password_hash``."""
    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD_LENGTH:
        typer.echo(
            f"error: the password must have at least {MIN_PASSWORD_LENGTH} characters", err=True
        )
        raise typer.Exit(2)
    typer.echo(hash_password(password))


@app.command("check-password")
def check_password_command(
    password_hash: Annotated[str, typer.Argument(help="the scrypt$… hash from the config")],
    stdin: Annotated[
        bool, typer.Option("--stdin", help="read the password from one line of standard input")
    ] = False,
) -> None:
    """Exit 0 if a password matches the hash, 1 if not (to check a config entry)."""
    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True)
    if not verify_password(password, password_hash):
        typer.echo("no match", err=True)
        raise typer.Exit(1)
    typer.echo("ok")
