"""docs/bench-history.json: the medians of every complete bench run, with its date and commit, oldest first.

A `make bench` that measured all figures appends its entry; `bench/run.py --import-history` adds the runs
recorded in git (each version of docs/bench-raw.json) that the file does not hold yet. The report's
"before and after" and history tables are rendered from it, never written by hand.
"""
import json

from lab import ROOT, git

HISTORY_JSON = ROOT / "docs" / "bench-history.json"
RAW_PATH = "docs/bench-raw.json"
# What tells one machine from another: seconds measured on two of them do not compare.
MACHINE = ("cpu_model", "cpus", "memory_gib", "kernel", "podman", "ansible_core")


def load():
    """The recorded entries, oldest first (none before the first run)."""
    return json.loads(HISTORY_JSON.read_text(encoding="utf-8")) if HISTORY_JSON.exists() else []


def save(entries):
    """Write the entries sorted by date (the dates are UTC and sort as text)."""
    entries = sorted(entries, key=lambda entry: entry["date"])
    HISTORY_JSON.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    return entries


def entry(data, source):
    """The history entry of a bench result (docs/bench-raw.json's content)."""
    mach = data["machine"]
    return {"date": mach["date"], "source": source, "commit": mach.get("commit"), "commit_subject": mach.get("commit_subject"),
            "dirty": mach.get("dirty"), "connection": mach.get("connection"), "settings": data.get("settings"),
            "machine": {key: mach.get(key) for key in MACHINE},
            "total_seconds": data.get("total_seconds"),
            "medians": {name: figure["median"] for name, figure in data["figures"].items()}}


def append(data):
    """Add this run's entry (replacing one of the same date) and return all entries."""
    kept = [old for old in load() if old["date"] != data["machine"]["date"]]
    return save(kept + [entry(data, "make bench")])


def import_from_git():
    """Add an entry for each version of docs/bench-raw.json in git whose run the history does not hold."""
    entries = load()
    known = {old["date"] for old in entries}
    for line in git("log", "--reverse", "--format=%h %s", "--", RAW_PATH).splitlines():
        commit, subject = line.split(" ", 1)
        data = json.loads(git("show", f"{commit}:{RAW_PATH}"))
        if data["machine"]["date"] in known:
            continue
        known.add(data["machine"]["date"])
        # The raw figures did not record the commit they measured: the entry names the one that recorded them.
        data["machine"].update(commit_subject=subject[:200])
        entries.append(dict(entry(data, f"git show {commit}:{RAW_PATH}"), recorded_in=commit))
    return save(entries)
