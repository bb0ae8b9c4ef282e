"""The ``pnp-rgm`` command line: a thin click layer over the Python API.

Each command lives in its own module of this package and is registered in ``COMMANDS``.
Errors: any :class:`pnp_rgm.errors.PnpRgmError` (a ``ValueError``) or click usage error is
printed as one line ``Error: ...`` on stderr and exits with status 2, without a traceback.
"""
from __future__ import annotations

import importlib
import sys

import click

from pnp_rgm.errors import PnpRgmError

# module name (inside pnp_rgm.cli; 'module.key' for a second command of a module) -> attribute
COMMANDS = {
    "degrade": "degrade",
    "restore": "restore",
    "restore.priors": "priors",
    "train": "train",
    "sample": "sample",
    "benchmark": "benchmark",
}


class CLIError(click.ClickException):
    """One-line error with exit status 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pnp-rgm")
def cli() -> None:
    """pnp-rgm: plug-and-play image restoration with exact operators and RGM priors."""


for _module, _attr in COMMANDS.items():
    cli.add_command(getattr(importlib.import_module(f"pnp_rgm.cli.{_module.split('.')[0]}"), _attr))


def main(argv: list[str] | None = None) -> int:
    """Console entry point. Returns (and exits with) the process status."""
    try:
        rv = cli.main(args=argv, prog_name="pnp-rgm", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        rc = 1
    except click.ClickException as exc:  # includes UsageError, BadParameter, CLIError
        msg = " ".join(exc.format_message().split())
        click.echo(f"Error: {msg}", err=True)
        rc = 2 if isinstance(exc, (click.UsageError, CLIError)) else exc.exit_code
    except PnpRgmError as exc:
        click.echo(f"Error: {' '.join(str(exc).split())}", err=True)
        rc = 2
    except click.exceptions.Exit as exc:
        rc = exc.exit_code
    else:
        rc = rv if isinstance(rv, int) else 0
    if argv is None:
        sys.exit(rc)
    return rc
