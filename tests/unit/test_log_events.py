"""The README lists every log event JQS writes, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_EMITTED = re.compile(
    r"\blog\.(?:debug|info|warning|error|exception|critical|log)\(\s*(?:logging\.\w+,\s*)?"
    r"(f?)\"([^\"]*)\""
)
# Job events (jqs.logging.job_event) are dicts whose "event" is set by name.
_JOB_EVENT = re.compile(r"(?:\"event\": |\[\"event\"\] = )(f?)\"([^\"]*)\"")


def emitted() -> set[str]:
    found = set()
    for path in (ROOT / "src" / "jqs").rglob("*.py"):
        text = path.read_text()
        for match in [*_EMITTED.finditer(text), *_JOB_EVENT.finditer(text)]:
            assert not match.group(1), f"{path}: an event name is a fixed string, not an f-string"
            found.add(match.group(2))
    return found


def documented() -> set[str]:
    section = (ROOT / "README.md").read_text().split("\n## Logs\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))


def test_the_readme_lists_every_log_event_and_only_those() -> None:
    code, readme = emitted(), documented()
    assert len(code) > 40
    assert code - readme == set(), "events the README does not list"
    assert readme - code == set(), "events the README lists that nothing writes"
