"""The web page as the app serves it, without a browser: self-contained (nothing from
another site) and laid out for a phone. The page itself is driven in headless Chromium
by tests/e2e/test_browser.py."""

from __future__ import annotations

import re


def test_the_page_is_self_contained_and_fits_a_phone(unstarted_app) -> None:
    page = unstarted_app(auth_required=False).get("/").text
    # no CDN: every script and style is inline, every link stays on this server
    assert not re.findall(r"""(?:src|href)=["']?(?:https?:)?//""", page)
    assert "<script src" not in page and "<link" not in page
    # a 390 px screen: one column, long names wrap, the document's delete button in its card
    assert "@media (max-width: 760px)" in page and "overflow-wrap:anywhere" in page
    assert (
        "main > div { min-width:0; }" in page
        and "ul.docs li > span { flex:1 1 auto; min-width:0; }" in page
    )
