"""The side panel's TypeScript unit tests and settings schema.

The unit tests (extension/test/) run under Node's own test runner against a
real HTTP server on 127.0.0.1; `npm test` compiles them first. They need
extension/node_modules, which `pip install -e .` creates when it builds
the panel.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

EXTENSION = Path(__file__).resolve().parents[2] / "extension"


def test_typescript_unit_tests_pass():
    npm = shutil.which("npm")
    assert npm is not None, "npm not found; install Node.js 20 or later"
    assert (EXTENSION / "node_modules").is_dir(), (
        f"{EXTENSION / 'node_modules'} is missing; run npm install in {EXTENSION}"
    )

    finished = subprocess.run(
        [npm, "test"],
        cwd=EXTENSION,
        capture_output=True,
        text=True,
        timeout=240,
    )

    output = finished.stdout + finished.stderr
    passed = re.search(r"^# pass (\d+)$", output, re.MULTILINE)
    assert finished.returncode == 0, output[-6000:]
    assert "# fail 0" in output, output[-6000:]
    assert passed is not None, output[-6000:]
    assert int(passed.group(1)) > 0, output[-6000:]


def test_settings_have_title_description_default():
    schema = json.loads((EXTENSION / "schema" / "plugin.json").read_text())

    properties = schema["properties"]

    assert properties, "the settings schema has no properties"
    for name, setting in properties.items():
        assert setting.get("title"), name
        assert setting.get("description"), name
        assert "default" in setting, name
