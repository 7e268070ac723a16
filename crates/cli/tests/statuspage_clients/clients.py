"""Real Statuspage consumers against a served page; prints one JSON report.

    clients.py exporter URL      statuspage-prometheus-exporter: one monitoring round, its metrics
    clients.py feeds URL         feedparser: /feed.atom, /history.atom, /history.rss
    clients.py ical URL          icalendar: /maintenances.ics (DTSTAMP, SEQUENCE, STATUS per UID)
    clients.py schema URL FILE   jsonschema: every /api/v2 document against FILE's $defs/documents
"""
import json
import os
import sys
import tempfile
import urllib.request


def get(url):
    with urllib.request.urlopen(url, timeout=20) as r:
        return r.read()


def exporter(url):
    work = tempfile.mkdtemp()
    services = os.path.join(work, "services.json")
    with open(services, "w") as f:
        json.dump({"rollcall": {"name": "rollcall", "url": url + "api/v2/summary.json"}}, f)
    os.environ["SERVICES_JSON_PATH"] = services
    os.chdir(work)  # its cache files
    from prometheus_client import generate_latest
    from statuspage_prometheus_exporter import service_checker, service_monitor

    result = service_checker.check_service_status("rollcall", {"name": "rollcall", "url": url + "api/v2/summary.json"})
    service_monitor.monitor_services(is_initial_run=True)
    return {"result": result, "metrics": generate_latest().decode()}


def feeds(url):
    import feedparser

    out = {}
    for path in ["feed.atom", "history.atom", "history.rss"]:
        d = feedparser.parse(get(url + path))
        out[path] = {
            "bozo": int(d.bozo),
            "bozo_exception": str(d.get("bozo_exception", "")),
            "version": d.version,
            "id": d.feed.get("id"),
            "author": d.feed.get("author"),
            "title": d.feed.get("title"),
            "entries": [
                {"id": e.get("id"), "title": e.get("title"), "link": e.get("link"), "published": e.get("published")}
                for e in d.entries
            ],
        }
    return out


def ical(url):
    import icalendar

    cal = icalendar.Calendar.from_ical(get(url + "maintenances.ics"))
    events = {}
    for ev in cal.walk("VEVENT"):
        stamp = ev.get("DTSTAMP").dt
        events[str(ev.get("UID"))] = {
            "dtstamp": stamp.isoformat(),
            "dtstamp_utc": stamp.tzinfo is not None and stamp.utcoffset().total_seconds() == 0,
            "sequence": int(ev.get("SEQUENCE", 0)),
            "status": str(ev.get("STATUS")),
            "start": ev.get("DTSTART").dt.isoformat(),
            "end": ev.get("DTEND").dt.isoformat(),
        }
    return {"method": str(cal.get("METHOD")), "events": events}


DOCS = {
    "status.json": "status",
    "summary.json": "summary",
    "components.json": "components",
    "incidents.json": "incidents",
    "incidents/unresolved.json": "incidents",
    "scheduled-maintenances.json": "scheduled_maintenances",
    "scheduled-maintenances/upcoming.json": "scheduled_maintenances",
    "scheduled-maintenances/active.json": "scheduled_maintenances",
}


def schema(url, file):
    import jsonschema

    with open(file) as f:
        root = json.load(f)
    jsonschema.Draft202012Validator.check_schema(root)
    out = {}
    for path, name in DOCS.items():
        doc = json.loads(get(url + "api/v2/" + path))
        s = dict(root)
        s["$ref"] = "#/$defs/documents/" + name
        v = jsonschema.Draft202012Validator(s)
        out[path] = sorted(f"{list(e.absolute_path)}: {e.message}" for e in v.iter_errors(doc))[:20]
    return out


if __name__ == "__main__":
    cmd, url = sys.argv[1], sys.argv[2]
    report = {"exporter": exporter, "feeds": feeds, "ical": ical}.get(cmd)
    print(json.dumps(schema(url, sys.argv[3]) if cmd == "schema" else report(url), default=str))
