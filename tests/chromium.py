"""Drive a page in real headless Chromium through one of ``clients/js/e2e/*.mjs``.

The Node script (playwright-core with Debian's chromium) and the test speak
a line protocol: one JSON object per line each way; the script's first line
is ``{"ready": true, ...}`` and any ``{"error": ...}`` fails the test with the
page's console log.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.node import ROOT

E2E = ROOT / "clients" / "js" / "e2e"


class PageDriver:
    """One Chromium page on ``url``, driven by the Node script ``script``."""

    def __init__(self, script: Path, url: str, env: dict[str, str] | None = None) -> None:
        self.script = script
        self.proc = subprocess.Popen(
            ["node", str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PAGE_URL": url, **(env or {})},
            cwd=script.parent.parent,
        )
        self.ready = self._read()
        assert self.ready.get("ready"), self.ready

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"{self.script.name} ended: {stderr}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            details = answer.get("logs", []) + answer.get("errors", [])
            raise AssertionError(f"page: {answer['error']}\n" + "\n".join(details))
        return answer

    def ask(self, **command: Any) -> dict[str, Any]:
        """Send one command; its answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        """Tell the script to quit (it closes Chromium), kill it if it doesn't."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def opener(make: Callable[..., PageDriver]) -> Iterator[Callable[..., PageDriver]]:
    """Body of a fixture: open pages with ``make``, close them all afterwards."""
    opened: list[PageDriver] = []

    def open_(*args: Any, **kwargs: Any) -> PageDriver:
        page = make(*args, **kwargs)
        opened.append(page)
        return page

    yield open_
    for page in opened:
        page.close()
