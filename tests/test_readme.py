"""The README's commands are the ones CI runs; its links and the docs' lead somewhere."""

import re
import shlex
from pathlib import Path

import pytest

from juno.cli import build_parser, load_config

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    text = FENCE.sub("", page.read_text())
    anchors: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def _commands(page: Path) -> list[list[str]]:
    """Each command of the page's bash blocks, as argv (continuations joined, comments cut)."""
    commands = []
    for lang, body in FENCE.findall(page.read_text()):
        if lang != "bash":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            while argv:
                cut = argv.index("&&") if "&&" in argv else len(argv)
                commands.append(argv[:cut])
                argv = argv[cut + 1 :]
    return commands


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


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_relative_links_lead_to_files_and_headings(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(target)
    assert not broken, f"{_name(page)}: broken links {broken}"


def test_readme_links_every_docs_page():
    text = (ROOT / "README.md").read_text()
    for page in PAGES[1:]:
        assert f"]({_name(page)})" in text, f"README does not link {_name(page)}"


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_commands_shown_are_accepted_as_written(page):
    """Every juno command parses, with known config keys; every script it runs exists."""
    parser = build_parser()
    for argv in _commands(page):
        if argv[0] == "bash":
            assert (ROOT / argv[1]).exists(), f"{_name(page)}: no {argv[1]}"
        elif argv[0] == ".venv/bin/juno":
            try:
                args = parser.parse_args(argv[1:])
            except SystemExit:
                pytest.fail(f"{_name(page)}: juno rejects {shlex.join(argv)}")
            load_config(args)
