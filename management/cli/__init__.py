"""The command line, one module per command group; `orchestrator.py` imports them all and runs
`cli` (management.cli.app). Nothing else imports this package."""
