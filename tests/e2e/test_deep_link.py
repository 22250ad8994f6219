"""A deep link opened as the very first request after `streamlit run app.py` shows the page inside the app.

Streamlit starts in its older pages-folder mode when a top-level pages/ folder exists, and ran /transfer as the
page file alone (sidebar "app", "attack lab"..., no page config) for every session until someone opened the root URL.
ui.router.through_router fixes it; this needs a server of its own that nobody has visited yet.
"""

from __future__ import annotations

TITLES = ["Attack Lab", "Fooling images", "Transfer between models", "Robustness to transformations"]


def test_a_deep_link_as_the_first_visit_is_routed_through_the_app(browser, fresh_server) -> None:
    with fresh_server("e2e_deep_link.log") as url:
        for visit in range(2):  # the first session, and one after it
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.set_default_timeout(120_000)
            page.goto(f"{url}/transfer")
            page.wait_for_selector("h1:has-text('Transfer between models')")
            nav = page.locator("[data-testid='stSidebarNavLink'], [data-testid='stTopNavLink']")
            nav.first.wait_for()
            texts = [t.split("\n")[-1] for t in nav.all_inner_texts()]
            assert texts[: len(TITLES)] == TITLES, (visit, texts)  # the router's titles, not file names
            assert "app" not in texts
            assert page.title() == "Adversarial Lab"  # app.py's page config ran
            page.close()
