"""Write the two example folders the README walks through, from the committed sample.

- ``web-only/``: the sample's web sessions of 2026-01-01 to 2026-09-30 as a GA4 traffic-acquisition
  CSV (GA4's banner, its column names, dates as YYYYMMDD, one row per day and channel group);
- ``crm-only/``: the sample's leads and opportunities created from 2025-07-01 as a HubSpot contacts
  export and a HubSpot deals export (made-up names, e-mails and phone numbers included, as HubSpot
  exports them: the kit never reads them).

Run from the project root: ``python data/examples/make_examples.py``. Deterministic: the same sample
gives byte-identical files. ``tests/test_examples.py`` checks the examples read back to the sample's
numbers.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
HERE = Path(__file__).resolve().parent
#: GA4's default channel groups; the sample's Events traffic has no GA4 group of its own
GA4_CHANNEL = {"Events": "Unassigned"}
#: HubSpot's Original Source for each of the sample's channels
HUBSPOT_SOURCE = {
    "Organic Search": "Organic Search",
    "Paid Search": "Paid Search",
    "Paid Social": "Paid Social",
    "Email": "Email Marketing",
    "Referral": "Referrals",
    "Direct": "Direct Traffic",
    "Events": "Offline Sources",
}
FIRST, LAST = "2026-01-01", "2026-09-30"


def _csv(rows: list[list[str]], *, quote_all: bool = False) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerows(rows)
    return out.getvalue()


def web_only(folder: Path) -> None:
    ws = pd.read_csv(SAMPLE / "web_sessions.csv", parse_dates=["date"])
    ws = ws[(ws.date >= FIRST) & (ws.date <= LAST)].copy()
    ws["group"] = ws.channel.replace(GA4_CHANNEL)
    day = ws.groupby(["date", "group"], sort=True).agg(
        users=("users", "sum"),
        new_users=("new_users", "sum"),
        sessions=("sessions", "sum"),
        engaged=("engaged_sessions", "sum"),
        seconds=("session_duration_s", "sum"),
    )
    rows = [
        [
            "Session primary channel group (Default Channel Group)", "Date", "Users", "New users", "Sessions",
            "Engaged sessions", "Average engagement time per session",
        ]
    ]  # fmt: skip
    for (date, group), r in day.iterrows():
        # GA4 writes the average engagement time with up to 6 decimals; x sessions gives the seconds back
        average = f"{r.seconds / r.sessions:.6f}".rstrip("0").rstrip(".") if r.sessions else "0"
        rows.append(
            [group, date.strftime("%Y%m%d"), str(r.users), str(r.new_users), str(r.sessions), str(r.engaged), average]
        )
    banner = (
        "# ----------------------------------------\n"
        "# Traffic acquisition: Session primary channel group (Default Channel Group)\n"
        "# Account: Example B2B Software\n"
        "# Property: www.example.com - GA4\n"
        "# ----------------------------------------\n"
        "#\n"
        f"# Start date: {FIRST.replace('-', '')}\n"
        f"# End date: {LAST.replace('-', '')}\n"
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "traffic_acquisition.csv").write_text(banner + _csv(rows), encoding="utf-8")


def _stamp(value: object) -> str:
    return "" if pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def crm_only(folder: Path) -> None:
    leads = pd.read_csv(SAMPLE / "leads.csv", parse_dates=["created_at", "mql_at", "sql_at"], keep_default_na=False)
    leads = leads[leads.created_at >= "2025-07-01"].reset_index(drop=True)
    contact_id = {lead: str(1_000_000 + i) for i, lead in enumerate(leads.lead_id)}
    contacts = [
        [
            "Record ID", "First Name", "Last Name", "Email", "Phone Number", "Create Date", "Lifecycle Stage",
            "Original Source", "Original Source Drill-Down 1", "Original Source Drill-Down 2", "First page seen",
            "Became a Lead Date", "Became a Marketing Qualified Lead Date", "Became a Sales Qualified Lead Date",
        ]
    ]  # fmt: skip
    for i, r in leads.iterrows():
        cid = contact_id[r.lead_id]
        stage = "salesqualifiedlead" if r.sql_at != "" else "marketingqualifiedlead" if r.mql_at != "" else "lead"
        contacts.append(
            [
                cid, f"First{i}", f"Last{i}", f"person{i}@example.com", f"+1 555 {i:07d}", _stamp(r.created_at), stage,
                HUBSPOT_SOURCE[r.channel], "", r.campaign, f"https://www.example.com{r.landing_page}?utm_medium=x",
                _stamp(r.created_at), _stamp(r.mql_at), _stamp(r.sql_at),
            ]
        )  # fmt: skip
    opps = pd.read_csv(SAMPLE / "opportunities.csv", parse_dates=["created_at", "closed_at"], keep_default_na=False)
    opps = opps[opps.created_at >= "2025-07-01"]
    # new business only: the preset maps no Deal Type, so a renewal would count as a new customer
    opps = opps[opps.type.isin(["", "new"])]
    opps = opps[(opps.lead_id == "") | opps.lead_id.isin(contact_id)]
    deals = [
        [
            "Record ID", "Deal Name", "Deal Stage", "Close Date", "Deal owner", "Amount", "Create Date", "Pipeline",
            "Is Closed Won", "Is Deal Closed?", "Currency", "Associated Company IDs (Primary)",
            "Associated Contact IDs",
        ]
    ]  # fmt: skip
    stage_name = {"won": "Closed won", "lost": "Closed lost", "open": "Contract sent"}
    for i, r in enumerate(opps.itertuples()):
        deals.append(
            [
                str(20_000_000 + i), f"Deal {i}", stage_name[r.stage], _stamp(r.closed_at), "Sam Seller",
                f"{r.amount:.2f}", _stamp(r.created_at), "Sales Pipeline", str(r.stage == "won").lower(),
                str(r.stage != "open").lower(), "USD", r.account_id.removeprefix("A"), contact_id.get(r.lead_id, ""),
            ]
        )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hubspot-crm-exports-all-contacts-2026-10-21.csv").write_text(_csv(contacts, quote_all=True))
    (folder / "hubspot-crm-exports-all-deals-2026-10-21.csv").write_text(_csv(deals, quote_all=True))


if __name__ == "__main__":
    web_only(HERE / "web-only")
    crm_only(HERE / "crm-only")
    print(f"wrote {HERE / 'web-only'} and {HERE / 'crm-only'}")
