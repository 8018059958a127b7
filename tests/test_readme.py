"""The README's commands are the ones CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_test_command_shown_in_the_readme():
    text = (ROOT / "README.md").read_text()
    marker = re.search(r"<!-- test-command: (.*) -->\n```bash\n(.*)\n```", text)
    assert marker, "README needs the test-command marker right above its code block"
    assert marker.group(1) == marker.group(2)
    assert "README.md" in (ROOT / ".ci" / "run").read_text()


def test_setup_command_uses_the_setup_script():
    text = (ROOT / "README.md").read_text()
    assert "bash scripts/setup.sh && .venv/bin/juno" in text
    assert (ROOT / "scripts" / "setup.sh").exists()
