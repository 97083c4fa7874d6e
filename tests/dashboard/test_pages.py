"""The dashboard in a real browser against a real monitor (PostgreSQL, MLflow, evaluations, alerts)."""

from __future__ import annotations

from urllib.parse import quote

import sqlalchemy as sa

from tests.dashboard.conftest import EVIL_REASON, SCREENSHOTS, Dashboard

CHARTS_JS = """() => Array.from(document.querySelectorAll('canvas[data-chart]')).map(c => {
  const chart = Chart.getChart(c);
  if (!chart) { return {id: c.id, series: -1}; }
  return {id: c.id, series: chart.data.datasets.length, labels: chart.data.labels.length,
          points: chart.data.datasets.map(d => d.data.length),
          markers: chart.options.plugins.aliasMarkers.markers.length};
})"""


def open_page(page, url: str) -> None:
    resp = page.goto(url, wait_until="load")
    assert resp is not None and resp.status == 200, f"{url}: {resp.status if resp else 'no response'}"


def charts(page) -> dict[str, dict]:
    return {c["id"]: c for c in page.evaluate(CHARTS_JS)}


def model_url(dash: Dashboard, name: str) -> str:
    return f"{dash.url}/models/{quote(name, safe='')}"


def test_overview_lists_every_model_with_status_champion_and_alerts(dashboard, page):
    open_page(page, dashboard.url + "/")
    cards = {c.get_attribute("data-model"): c for c in page.locator("article.card").all()}
    # The tracking server is shared by the whole session: other tests' champions may be listed too.
    assert {dashboard.drifting, dashboard.concept, dashboard.evil} <= set(cards)
    drifting = cards[dashboard.drifting]
    assert drifting.locator(".badge").first.inner_text().lower() == "drifting"
    assert "data_drift" in drifting.locator(".alerts-cell").inner_text()
    champion = drifting.locator("a", has_text="v2")
    assert champion.get_attribute("href") == f"http://mlflow.test/#/models/{dashboard.drifting}/versions/2"
    run_link = drifting.locator("a", has_text="training run").get_attribute("href")
    assert run_link.startswith("http://mlflow.test/#/experiments/") and "/runs/" in run_link
    assert cards[dashboard.evil].locator(".badge").first.inner_text().lower() == "healthy"
    # the concept model was rolled back after its concept-drift alert: metrics say so
    concept_metrics = cards[dashboard.concept].locator(".metrics").inner_text()
    assert "50%" in concept_metrics  # v1 held up, v2 was rolled back
    page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)
    assert page.console_log.errors == []


def test_model_page_charts_errors_scores_share_and_alias_moves(dashboard, page):
    open_page(page, model_url(dashboard, dashboard.drifting))
    page.wait_for_function(
        "() => document.querySelectorAll('canvas[data-chart]').length === 5 && "
        "Array.from(document.querySelectorAll('canvas')).every(c => Chart.getChart(c))"
    )
    found = charts(page)
    points = len(dashboard.evaluations[dashboard.drifting])  # 5 evaluations, all ok
    assert found["chart-errors"]["series"] == 4 and found["chart-errors"]["points"] == [points] * 4
    assert found["chart-scores"]["series"] == 2 and found["chart-scores"]["points"] == [points] * 2
    assert found["chart-share"]["series"] == 1 and found["chart-share"]["points"] == [points]
    # Labels later: estimated and realized error on one chart, the interval as a filled band.
    assert found["chart-estimate"]["series"] == 4 and found["chart-estimate"]["points"] == [points] * 4
    band = page.evaluate(
        "() => Chart.getChart(document.getElementById('chart-estimate')).data.datasets[1].fill")
    assert band == "-1"
    assert "Track record over" in page.locator("#estimate-track-record").inner_text()
    drift_charts = {k: c for k, c in found.items() if not k.startswith("chart-challenger-")}
    assert {c["markers"] for c in drift_charts.values()} == {2}  # v1 and v2 became champion
    # The 4th: v2 against previous v1 on its batches since the promotion (the rollback guard).
    [guard] = [c for k, c in found.items() if k.startswith("chart-challenger-")]
    assert guard["series"] == 2 and guard["points"] == [2, 2]
    history = page.locator("#alias-history tbody tr")
    assert history.count() == 3  # champion v1, champion v2, previous v1
    assert EVIL_REASON in page.locator("#alias-history").inner_text()  # shown as text, not run
    assert page.title() != "pwned"
    assert "deploys / week" in page.locator(".metrics").inner_text().lower()
    page.screenshot(path=str(SCREENSHOTS / "model.png"), full_page=True)
    assert page.console_log.errors == []


def test_evaluation_page_shows_tests_quality_and_overlaid_distributions(dashboard, page):
    drift = dashboard.evaluation(dashboard.drifting, "data_drift")
    open_page(page, f"{dashboard.url}/evaluations/{drift['id']}")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('canvas')).every(c => Chart.getChart(c))"
    )
    found = charts(page)
    assert set(found) == {"dist-1", "dist-2", "dist-residuals"}
    # the engine's report carries reference and current counts over the profile's PSI bins
    assert all(c["series"] == 2 and c["points"][0] == c["points"][1] == c["labels"] for c in found.values())
    assert page.locator(".note").count() == 0
    x0 = page.locator("article.feature[data-feature=x0]")
    assert "ks" in x0.locator("table.tests").inner_text()
    assert x0.locator(".badge", has_text="drifted").count() == 1
    assert page.locator("#quality tbody tr").count() == 2
    assert page.console_log.errors == []
    page.screenshot(path=str(SCREENSHOTS / "evaluation.png"), full_page=True)


def test_evaluation_page_overlays_reference_and_current_when_the_report_has_bins(dashboard, page):
    open_page(page, f"{dashboard.url}/evaluations/{dashboard.synthetic_id}")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('canvas')).every(c => Chart.getChart(c))"
    )
    found = charts(page)
    assert {c["series"] for c in found.values()} == {2}
    assert {tuple(c["points"]) for c in found.values()} == {(10, 10)}
    assert page.locator(".note").count() == 0
    assert page.console_log.errors == []


def test_concept_drift_evaluation_shows_residuals_and_error_ratio(dashboard, page):
    ev = dashboard.evaluation(dashboard.concept, "concept_drift")
    open_page(page, f"{dashboard.url}/evaluations/{ev['id']}")
    text = page.locator("main").inner_text()
    assert "residuals" in text and "mse_ratio" in text
    assert charts(page)["dist-residuals"]["series"] == 2
    assert page.console_log.errors == []


def test_a_model_named_with_html_is_shown_escaped(dashboard, page):
    open_page(page, dashboard.url + "/")
    assert page.locator("b[onmouseover]").count() == 0
    assert page.get_by_text(dashboard.evil, exact=True).count() == 1
    page.get_by_text(dashboard.evil, exact=True).click()
    page.wait_for_load_state("load")
    assert page.locator("h1 .model-name").inner_text() == dashboard.evil
    assert page.locator("b[onmouseover], img[onerror]").count() == 0
    assert "<img src=x onerror=alert(2)>" in page.locator("#alias-history").inner_text()
    assert page.console_log.errors == []


def _silences(dashboard: Dashboard) -> list:
    from monitor.alerts.models import Silence

    with dashboard.app.extensions["driftline"].sessions() as session:
        return session.scalars(sa.select(Silence)).all()


def test_silence_is_created_and_ended_from_the_page_only_with_the_token(dashboard, page):
    open_page(page, dashboard.url + "/alerts")
    firing = page.locator("#firing tr", has_text=dashboard.drifting).filter(has_text="data_drift")
    assert firing.count() == 1 and "firing" in firing.inner_text().lower()
    assert "webhook: sent" in firing.locator(".deliveries").inner_text()
    page.fill("#silence-model", dashboard.drifting)
    page.select_option("#silence-alertname", "data_drift")
    page.fill("#silence-by", "oncall")
    page.fill("#silence-comment", "investigating the shift")

    for token in ("", "wrong-token-0123456789"):
        page.fill("#api-token", token)
        page.click("#silence-create")
        page.wait_for_selector("#silence-message.error")
        assert "missing or wrong API token" in page.inner_text("#silence-message")
        assert _silences(dashboard) == []

    page.fill("#api-token", dashboard.token)
    with page.expect_navigation():
        page.click("#silence-create")
    row = page.locator("#silences tr[data-state=active]")
    assert row.count() == 1 and "investigating the shift" in row.inner_text()
    firing = page.locator("#firing tr", has_text=dashboard.drifting).filter(has_text="data_drift")
    assert "silenced" in firing.inner_text().lower()
    page.screenshot(path=str(SCREENSHOTS / "alerts.png"), full_page=True)

    page.fill("#api-token", "")
    row.locator("button.end-silence").click()
    page.wait_for_selector("#silence-message.error")
    assert len([s for s in _silences(dashboard) if s.ends_at > s.starts_at]) == 1

    page.fill("#api-token", dashboard.token)
    with page.expect_navigation():
        row.locator("button.end-silence").click()
    assert page.locator("#silences tr[data-state=expired]").count() == 1
    # the refused calls are the only console errors ("Failed to load resource: ... 401")
    assert all("401" in e for e in page.console_log.errors), page.console_log.errors


def test_pages_fit_a_phone_screen(dashboard, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        for path in (
            "/",
            f"/models/{quote(dashboard.drifting)}",
            "/alerts",
            f"/evaluations/{dashboard.evaluation(dashboard.drifting, 'data_drift')['id']}",
        ):
            open_page(page, dashboard.url + path)
            assert page.locator('meta[name="viewport"]').count() == 1
            overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{path} scrolls sideways by {overflow}px"
        open_page(page, dashboard.url + "/")
        page.screenshot(path=str(SCREENSHOTS / "overview-phone.png"), full_page=True)
    finally:
        context.close()


def test_chart_library_is_served_by_the_monitor(dashboard, page):
    requested: list[str] = []
    page.on("request", lambda req: requested.append(req.url))
    open_page(page, model_url(dashboard, dashboard.drifting))
    assert any(u.endswith("/dashboard/vendor/chart.umd.min.js") for u in requested)
    assert all(u.startswith(dashboard.url) for u in requested), requested


def test_model_page_shows_champion_against_challenger_with_the_evidence(dashboard, page):
    open_page(page, model_url(dashboard, dashboard.challenged))
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('canvas')).every(c => Chart.getChart(c))")
    found = charts(page)
    [paired] = [c for name, c in found.items() if name.startswith("chart-challenger-")]
    assert paired["series"] == 2 and paired["points"] == [paired["labels"]] * 2
    tests = page.locator("#challenger-tests tbody tr").all()
    assert len(tests) == 1
    cells = [c.inner_text() for c in tests[0].locator("td").all()]
    assert cells[1].startswith("challenger v2") and cells[-1] == "challenger_better"
    decision = page.locator("#loop-decisions tbody tr").first.inner_text()
    assert "notify v1 → v2" in decision and "done" in decision
    assert "challenger_ready" in page.locator("section", has_text="Open and recent alerts").last.inner_text()
    page.locator("#challengers").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "challenger.png"), full_page=True)
    assert page.console_log.errors == []
