"""The web page (issue 11 papercuts): its script run by Node on a minimal DOM (no browser
here yet), the page as the app serves it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

HARNESS = Path(__file__).with_name("page_harness.js")


def test_the_page_asks_on_enter_confirms_deletes_and_fits_a_phone(
    unstarted_app, tmp_path: Path
) -> None:
    page = unstarted_app(auth_required=False).get("/").text
    # a 390 px screen: one column, long names wrap, the document's delete button in its card
    assert "@media (max-width: 760px)" in page and "overflow-wrap:anywhere" in page
    assert (
        "main > div { min-width:0; }" in page
        and "ul.docs li > span { flex:1 1 auto; min-width:0; }" in page
    )
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the page's script is not run")
    script = tmp_path / "page.js"
    script.write_text(re.search(r"<script>(.*)</script>", page, re.S).group(1))
    proc = subprocess.run(
        [node, str(HARNESS), str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(proc.stdout)
    assert seen["emptyDocs"] == '<li class="muted">no documents yet: upload some</li>'
    assert not seen["shiftEnterPrevented"] and seen["shiftEnterFetches"] == 0  # a new line
    assert seen["enterPrevented"] and seen["enterFetches"] == ["/v1/query"]
    assert seen["refused"] == [
        'confirm Delete a.txt from the collection "docs"? This cannot be undone.'
    ]
    assert seen["confirmed"][1] == "fetch DELETE /v1/collections/docs/documents/" + "ab" * 16
