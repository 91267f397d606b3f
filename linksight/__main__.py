"""Allow `python -m linksight`, the same as the `linksight` command."""

from linksight.cli import app

app(prog_name="linksight")
