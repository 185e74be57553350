"""The Dagster UI in real headless Chromium, against a real deployment (gRPC code server,
`dagster-daemon`, webserver) on the embedded database — as a data engineer uses it.

What the UI must list is read from the Definitions object, so the test follows the code: every
asset, every asset check, every schedule with its cron, timezone and default state, every sensor.
Then, by clicking: a materialization of `contactable_leads`, the 06:00 schedule turned off, and a
3-day backfill of `daily_campaign_batch` (the dialog adds `instantly_campaign_leads`) that sends
each day once — counted in what the sandbox's Instantly received and in `campaign_sends`.
A screenshot of every step lands in the test's tmp dir.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from pathlib import Path

import dagster as dg
import psycopg

from equity_assets.definitions import defs
from equity_assets.sandbox import SandboxControl, running_sandbox

from .stack import LOCATION, REPOSITORY, Deployment, deployment, deployment_env, wait_until

REPO_DEF = defs.get_repository_def()
GRAPH = defs.resolve_asset_graph()
ASSETS = sorted(key.to_user_string() for key in GRAPH.get_all_asset_keys())
CHECKS: dict[str, list[str]] = {}
for _check in GRAPH.asset_check_keys:
    CHECKS.setdefault(_check.asset_key.to_user_string(), []).append(_check.name)
SCHEDULES = {s.name: (s.cron_schedule, s.execution_timezone or "UTC", s.default_status == dg.DefaultScheduleStatus.RUNNING)
             for s in REPO_DEF.schedule_defs}
SENSORS = {s.name: s.default_status == dg.DefaultSensorStatus.RUNNING for s in REPO_DEF.sensor_defs}

CAP = 3
BROKERS = ("North", "South")
DAYS = ["2026-11-24", "2026-11-25", "2026-11-26"]
TIMEOUT_MS = 60_000
SCHEDULE_STATE = """query($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) {
    ... on Schedule { scheduleState { status } } } }"""
RUN_STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""
BACKFILL = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { status partitionNames } } }"""


def seed(conn: psycopg.Connection) -> None:
    """Two brokers (cap 3 a day) with 12 verified, queued leads each: caps, not leads, bound the days.
    Verified just now, so the daemon's verification sensor finds none of them due."""
    for name in BROKERS:
        broker = uuid.uuid4()
        conn.execute("INSERT INTO brokers (id, name, daily_cap, instantly_campaign_id) VALUES (%s, %s, %s, %s)",
                     (broker, name, CAP, f"ui-{name}"))
        conn.execute(
            """INSERT INTO leads (email, first_name, last_name, property_address, property_city, property_state,
                                  email_verified, verified_at, lead_score, assigned_broker_id, campaign_status)
               SELECT lower(%(name)s) || n || '@example.com', 'First' || n, 'Last' || n, n || ' ' || %(name)s || ' Ave',
                      'Austin', 'TX', true, now(), 50 + n, %(broker)s, 'queued'
               FROM generate_series(1, 12) AS n""",
            {"name": name, "broker": broker},
        )


class UI:
    """One browser tab on the webserver; `shot` keeps a screenshot of each step."""

    def __init__(self, page, url: str, shots: Path) -> None:
        self.page, self.url, self.shots, self.step = page, url, shots, 0

    def open(self, path: str, *ready: str | re.Pattern):
        """Go to `path` and wait for each text in `ready` (a string matches an element's whole text),
        the first one found on no other page: the previous page is gone once it shows."""
        if self.page.url.startswith(self.url):  # in-app navigation: the app stays loaded, as when clicking
            self.page.evaluate("p => { history.pushState({}, '', p); dispatchEvent(new PopStateEvent('popstate')); }", path)
        else:
            self.page.goto(self.url + path)
        for text in ready:
            self.page.get_by_text(text, exact=True).filter(visible=True).first.wait_for(timeout=TIMEOUT_MS)
        return self.page

    def shot(self, name: str) -> None:
        self.step += 1
        self.page.screenshot(path=str(self.shots / f"{self.step:02d}-{name}.png"), full_page=True)

    def text(self) -> str:
        return self.page.inner_text("body")

    def button(self, label: str):
        return self.page.locator("button").filter(has_text=re.compile(rf"^{re.escape(label)}$"))

    def switch(self):
        """The Running/Stopped switch of a schedule or sensor page."""
        return self.page.locator("label[class*=formatSwitch] input[type=checkbox]")


def crumb(name: str) -> re.Pattern:
    """The page title of a schedule or sensor: `Automation / name`."""
    return re.compile(rf"^Automation\s*/\s*{re.escape(name)}$")


def run_launched_from_toast(ui: UI) -> str:
    """The run id in the "View" link of the toast a launch shows; the UI may first ask to confirm
    materializing an asset whose upstream was never materialized (the test's leads came by SQL)."""
    toast = ui.page.locator("a[href^='/runs/']", has_text="View").first
    asked = ui.page.get_by_role("dialog").filter(has_text="Are you sure?")
    toast.or_(asked).first.wait_for(timeout=TIMEOUT_MS)
    if asked.is_visible():
        asked.locator("button", has_text="Confirm").click()
    toast.wait_for(timeout=TIMEOUT_MS)
    return toast.get_attribute("href").rsplit("/", 1)[1]


def assert_lists_the_definitions(ui: UI) -> None:
    page = ui.open("/locations", LOCATION)
    row = page.locator("[class*=CodeLocationRow]", has_text=LOCATION)
    row.get_by_text("Loaded", exact=True).wait_for(timeout=TIMEOUT_MS)
    assert "error" not in row.inner_text().lower(), row.inner_text()
    ui.shot("code-location")

    page = ui.open("/assets", ASSETS[0])
    listed = {link.get_attribute("href").split("?")[0].removeprefix("/assets/")
              for link in page.locator("a[href^='/assets/']").all()}
    assert set(ASSETS) <= listed, set(ASSETS) - listed
    ui.shot("catalog")

    for asset, checks in sorted(CHECKS.items()):
        page = ui.open(f"/assets/{asset}?view=checks", asset, f"Checks ({len(checks)})")
        for check in checks:  # the list renders after its heading: wait for each name
            page.get_by_text(check, exact=True).first.wait_for(state="attached", timeout=TIMEOUT_MS)

    for name, (cron, timezone, running) in sorted(SCHEDULES.items()):
        ui.open(f"/locations/{LOCATION}/schedules/{name}", crumb(name), f"({cron})")
        assert re.search(rf"Execution timezone\s+{re.escape(timezone)}\b", ui.text()), (name, ui.text()[:2000])
        ui.switch().wait_for(state="attached", timeout=TIMEOUT_MS)
        assert ui.switch().is_checked() == running, name
    ui.shot("schedule")

    for name, running in sorted(SENSORS.items()):
        ui.open(f"/locations/{LOCATION}/sensors/{name}", crumb(name), "Running")  # the switch's label, on or off
        ui.switch().wait_for(state="attached", timeout=TIMEOUT_MS)
        assert ui.switch().is_checked() == running, name
    ui.shot("sensor")


def materialize_contactable_leads(ui: UI, dep: Deployment) -> None:
    """The asset page's Materialize button; the run page must come to say Success."""
    ui.open("/assets/contactable_leads", "contactable_leads", "Materialize")
    ui.button("Materialize").click()
    run_id = run_launched_from_toast(ui)
    ui.shot("materialize-launched")
    ui.open(f"/runs/{run_id}", run_id[:8])
    ui.page.get_by_text("Success", exact=True).first.wait_for(timeout=240_000)
    ui.shot("materialize-success")
    assert dep.graphql(RUN_STATUS, id=run_id)["runOrError"]["status"] == "SUCCESS"


def turn_off_daily_campaign_schedule(ui: UI, dep: Deployment) -> None:
    """The switch on the schedule's page (so no real 06:00 tick sends during the test)."""
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "scheduleName": "daily_campaign_schedule"}
    ui.open(f"/locations/{LOCATION}/schedules/daily_campaign_schedule", crumb("daily_campaign_schedule"))

    def stopped() -> bool:
        if ui.switch().is_checked():  # on by default: a click may race the daemon's first write, so click again
            ui.switch().locator("xpath=..").click()
        state = dep.graphql(SCHEDULE_STATE, s=selector)["scheduleOrError"]["scheduleState"]
        return state["status"] == "STOPPED"

    wait_until(stopped, timeout_s=60, what="daily_campaign_schedule turned off", every_s=2)
    ui.shot("schedule-off")


def backfill_three_days(ui: UI, dep: Deployment) -> None:
    """Materialize… → the push is added → Custom partitions → Launch backfill → Succeeded."""
    ui.open("/assets/daily_campaign_batch", "daily_campaign_batch", "Materialize…")
    ui.button("Materialize…").click()
    extra = ui.page.get_by_role("dialog").filter(has_text="Additional assets will be materialized")
    extra.wait_for(timeout=TIMEOUT_MS)
    assert "instantly_campaign_leads" in extra.inner_text()
    ui.shot("backfill-adds-push")
    extra.locator("button", has_text="Confirm").click()
    launch = ui.page.get_by_role("dialog").filter(has_text="Launch runs to materialize 2 assets")
    launch.wait_for(timeout=TIMEOUT_MS)
    box = launch.locator("input[type=text]").first
    box.fill(f"[{DAYS[0]}...{DAYS[-1]}]")
    box.press("Enter")
    launch.get_by_text("3 partitions", exact=True).wait_for(timeout=TIMEOUT_MS)
    ui.shot("backfill-dialog")
    launch.locator("button", has_text="Launch backfill").click()
    link = ui.page.locator("a[href^='/runs/b/']", has_text="View").first
    link.wait_for(timeout=TIMEOUT_MS)
    backfill_id = link.get_attribute("href").rsplit("/", 1)[1]
    ui.shot("backfill-launched")

    def finished() -> dict | None:
        answer = dep.graphql(BACKFILL, id=backfill_id)["partitionBackfillOrError"]
        return answer["status"] not in ("REQUESTED",) and answer

    answer = wait_until(finished, timeout_s=300, what="the backfill", every_s=2)
    assert (answer["status"], sorted(answer["partitionNames"])) == ("COMPLETED_SUCCESS", DAYS), answer
    ui.page.goto(f"{ui.url}/runs/b/{backfill_id}")  # what the operator sees once it is done
    ui.page.get_by_text("100% completed", exact=True).first.wait_for(timeout=TIMEOUT_MS)
    assert re.search(r"\nStatus\s*\n\s*Succeeded\s*\n", ui.text()), ui.text()[:3000]
    ui.shot("backfill-succeeded")


def test_dagster_ui_lists_the_definitions_materializes_and_backfills_each_lead_once(
        tmp_path, clean_db, dagster_storage, browser):
    with psycopg.connect(clean_db.admin_dsn, autocommit=True) as conn:
        seed(conn)
    with running_sandbox() as sandbox_url:
        env = deployment_env(tmp_path, dagster_storage, database_url=clean_db.app_dsn, sandbox_url=sandbox_url,
                             consent_base_url="http://127.0.0.1:9")
        with deployment(tmp_path, env) as dep:
            dep.graphql("mutation { setNuxSeen }")  # the first-visit newsletter dialog, answered once per instance
            context = browser.new_context(viewport={"width": 1600, "height": 2400})
            context.set_default_timeout(TIMEOUT_MS)
            ui = UI(context.new_page(), dep.url, tmp_path)
            try:
                assert_lists_the_definitions(ui)
                materialize_contactable_leads(ui, dep)
                turn_off_daily_campaign_schedule(ui, dep)
                backfill_three_days(ui, dep)
            except Exception:
                ui.shot("failed")
                raise
            finally:
                context.close()
        received = {name: SandboxControl(sandbox_url).campaign_leads(f"ui-{name}") for name in BROKERS}

    with psycopg.connect(clean_db.admin_dsn) as conn:
        sends = conn.execute("""SELECT s.batch_date::text, b.name, s.status, l.id, l.email FROM campaign_sends s
                                JOIN brokers b ON b.id = s.broker_id JOIN leads l ON l.id = s.lead_id""").fetchall()
    assert Counter((day, broker) for day, broker, *_ in sends) == {(day, b): CAP for day in DAYS for b in BROKERS}
    assert {status for _, _, status, _, _ in sends} == {"pushed"}
    assert len({lead for *_, lead, _ in sends}) == len(sends)  # no lead in two days
    for name, campaign in received.items():  # Instantly got each of the broker's sends once, and nothing else
        assert sorted(lead["email"] for lead in campaign) == sorted(e for _, b, _, _, e in sends if b == name)
        assert {lead["upload_count"] for lead in campaign} == {1}
