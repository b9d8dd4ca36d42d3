#!/usr/bin/env python
"""Benchmark the relay role on the local podman lab (`make bench`).

Usage: bench/run.py [converge|fleet|failover|throughput ...]   (default: all four)
       bench/run.py --render                                   (rewrite docs from docs/bench-raw.json)
       bench/run.py --import-history                           (add the runs recorded in git to the history)

Every figure is the median of BENCH_RUNS runs (default 3), and every comparison is measured
side by side inside each run, because the machine is shared: read the ratios, not the seconds.
Environment: BENCH_RUNS, BENCH_FLEET ("1 4 16"), BENCH_FLEET_PAIRS (3: ping and no-op pairs per fleet size and run),
BENCH_FLEET_PACKAGES (preinstalled | fresh), BENCH_CONNECTION (ssh | podman), BENCH_MESSAGES (500), BENCH_REFERENCE_MESSAGES (60), LAB_IMAGE, LAB_NETWORK,
BENCH_KEEP=1 (leave the lab's containers and images for a look; `make clean-lab` removes them then).
Writes docs/bench-raw.json (all runs), docs/bench-history.json (a run of all figures appends its medians),
docs/performance.md and its charts (docs/performance/*.png), and prints the targets.
Containers are named smarthost-bn-*, carry the project's label (LAB_LABEL=container) and are removed at the end,
also on failure or Ctrl-C (unless BENCH_KEEP=1).

The parts, top to bottom: bench/lab.py (containers, Ansible runs, shared helpers), one module per figure
(figure_converge.py, figure_fleet.py, figure_failover.py, figure_throughput.py: measure() returns the
figure's runs and medians), history.py (the recorded runs), report.py and charts.py (the page).
"""
import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field

import figure_converge
import figure_failover
import figure_fleet
import figure_throughput
import history
import report
from lab import FLEET_MAX, PREINSTALLED_IMAGE, ROOT, WORK, Ansible, BenchError, Lab, log, machine, set_up

RAW_JSON = ROOT / "docs" / "bench-raw.json"
# The shape of bench-raw.json's figures; a run of some figures keeps the others' only from a file of this shape.
RAW_FORMAT = 2
FIGURES = {module.KEY: module for module in (figure_converge, figure_fleet, figure_failover, figure_throughput)}


@dataclass
class Bench:
    """What every figure's measure() gets: the lab, Ansible, the settings, and what the figures leave to each other."""
    lab: Lab
    ansible: Ansible
    settings: dict
    # None: the bench's base image, without the packages.
    fleet_image: str = None
    # The fleet's last relays stay (converged) when the failover figure follows and can use them.
    keep_fleet: bool = False
    figures: list = field(default_factory=list)


def settings_from_env():
    """BENCH_* settings, checked."""
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    sizes = [int(size) for size in os.environ.get("BENCH_FLEET", "1 4 16").split()]
    pairs = int(os.environ.get("BENCH_FLEET_PAIRS", "3"))
    packages = os.environ.get("BENCH_FLEET_PACKAGES", "preinstalled")
    connection = os.environ.get("BENCH_CONNECTION", "ssh")
    messages = int(os.environ.get("BENCH_MESSAGES", "500"))
    reference = int(os.environ.get("BENCH_REFERENCE_MESSAGES", "60"))
    bad = (runs < 1 or not sizes or min(sizes) < 1 or sum(sizes) > FLEET_MAX or pairs < 1 or packages not in ("preinstalled", "fresh")
           or connection not in ("ssh", "podman") or min(messages, reference) < 1)
    if bad:
        raise SystemExit(f"bad settings: BENCH_RUNS={runs} BENCH_FLEET={sizes} (at most {FLEET_MAX} relays in all) BENCH_FLEET_PAIRS={pairs} "
                         f"BENCH_FLEET_PACKAGES={packages} BENCH_CONNECTION={connection} "
                         f"BENCH_MESSAGES={messages} BENCH_REFERENCE_MESSAGES={reference}")
    return {"runs": runs, "fleet": sizes, "fleet_pairs": pairs, "fleet_packages": packages, "connection": connection, "messages": messages,
            "reference_messages": reference}


def write_raw(data):
    """docs/bench-raw.json: this run's figures (and those of earlier runs for figures this one did not measure)."""
    RAW_JSON.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def publish(data, entries):
    """The page and its charts; the targets and figures on stdout."""
    text = report.write(data, entries)
    print(text.split("## How it is measured", maxsplit=1)[0].rstrip())


def measure(figures, settings):
    """Set the lab up, measure the figures in order, tear the lab down; returns the raw data, or None on failure."""
    data = json.loads(RAW_JSON.read_text(encoding="utf-8")) if RAW_JSON.exists() else {}
    if data.get("format") != RAW_FORMAT:
        data = {"format": RAW_FORMAT, "figures": {}}
    data.update(machine=machine(settings["connection"]), settings=settings, command="make bench")
    lab = Lab(settings["connection"])
    bench = Bench(lab=lab, ansible=Ansible(lab), settings=settings, figures=figures,
                  fleet_image=PREINSTALLED_IMAGE if settings["fleet_packages"] == "preinstalled" else None,
                  keep_fleet="fleet" in figures and "failover" in figures[figures.index("fleet"):])
    started = time.monotonic()
    try:
        set_up(lab, figures, bench.fleet_image)
        data["setup_seconds"] = round(time.monotonic() - started, 1)
        for key in figures:
            figure_started = time.monotonic()
            result = FIGURES[key].measure(bench)
            result.update(date=data["machine"]["date"], bench_seconds=round(time.monotonic() - figure_started, 1))
            data["figures"][key] = result
            # Written after each figure, so a later failure keeps what was measured.
            write_raw(data)
    except BenchError as error:
        log(f"FAILED: {error}")
        return None
    finally:
        if os.environ.get("BENCH_KEEP") == "1":
            log(f"BENCH_KEEP=1: left {', '.join(lab.started)} and {', '.join(lab.images)}")
        else:
            log("removing the bench containers")
            lab.cleanup()
    data["total_seconds"] = round(time.monotonic() - started, 1)
    log(f"done in {data['total_seconds']} s")
    write_raw(data)
    return data


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figures", nargs="*", help=f"figures to measure: {', '.join(FIGURES)} (default: all)")
    parser.add_argument("--render", action="store_true", help="only rewrite docs/performance.md from docs/bench-raw.json")
    parser.add_argument("--import-history", action="store_true", help="add the runs recorded in git to docs/bench-history.json")
    args = parser.parse_args()
    if args.import_history:
        log(f"{len(history.import_from_git())} runs in {history.HISTORY_JSON}")
    if args.render or args.import_history:
        publish(json.loads(RAW_JSON.read_text(encoding="utf-8")), history.load())
        return 0
    figures = args.figures or list(FIGURES)
    if set(figures) - set(FIGURES):
        parser.error(f"unknown figure(s) {', '.join(sorted(set(figures) - set(FIGURES)))}; choose from {', '.join(FIGURES)}")
    settings = settings_from_env()
    os.environ.setdefault("CONTAINERS_CONF", str(ROOT / "tests" / "images" / "containers.conf"))
    WORK.mkdir(parents=True, exist_ok=True)
    data = measure(figures, settings)
    if data is None:
        return 1
    # Only a run of every figure is a point of the history: its figures were measured side by side.
    entries = history.append(data) if set(figures) == set(FIGURES) else history.load()
    publish(data, entries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
