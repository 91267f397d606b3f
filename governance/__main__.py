"""Run the hub's command line: ``python -m governance serve --state-dir DIR``."""

from governance.cli import app

app(prog_name="linksight hub")
