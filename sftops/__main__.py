"""`python -m sftops` (and `torchrun -m sftops train`) run the CLI."""

from sftops.cli import app

app()
