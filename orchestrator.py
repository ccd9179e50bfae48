#!/usr/bin/env python3
"""orchestrator: the command line of the homelab services VM.

A thin Click layer: it parses options, loads the settings, builds the managers, calls
them and turns their errors into messages and exit codes. It never builds an argv.
The commands live in management/cli/, one module per group; this file is the entry point.

Exit codes: 0 success, 1 a command or step failed, 2 usage error, 3 configuration error,
4 another run holds the lock.
"""

from __future__ import annotations

import management.cli.backups
import management.cli.host
import management.cli.restore
import management.cli.settings
import management.cli.stacks
import management.cli.storage  # noqa: F401 - each module adds its commands to `cli`
from management.cli.app import App, cli

__all__ = ["App", "cli", "main"]


def main() -> None:
    cli(prog_name="orchestrator")


if __name__ == "__main__":
    main()
