"""Figure 2, fleet: N relays in one play (forks = N), the first converge, the no-op rerun, and the ping over the same N.

Each run starts the relays of every size at once (booting them is not measured), then for one size after
the other, each on its own relays: the first converge, then BENCH_FLEET_PAIRS pairs of `ansible -m ping` over
those N relays and the no-op rerun, the ping first in odd pairs and the no-op first in even ones (so neither
always runs right after the converge or the other), each pair's ratio taken within the pair: with the relays
on the controller's own CPUs, the ratios of single pairs spread widely, and one pair per run was too few for
a stable median. At the end of the run it removes them all: a converged relay is idle, and removing containers
can make the lab's DNS miss look-ups (the next converge's preflight) for a moment.
"""
from lab import PREINSTALLED_IMAGE, fleet_names, log, median, ratio

KEY = "fleet"
TITLE = "2. Fleet: N relays in one play"


def measure(bench):
    """The pairs (one entry each; the first converge in a run's first pair) and the medians per size; with
    bench.keep_fleet the last run's relays stay for the failover figure."""
    lab, ansible, runs, sizes = bench.lab, bench.ansible, bench.settings["runs"], bench.settings["fleet"]
    pairs = bench.settings["fleet_pairs"]
    results = []
    everyone = fleet_names(sum(sizes))
    for number in range(1, runs + 1):
        log(f"fleet run {number}/{runs}: starting {len(everyone)} relays for sizes {', '.join(map(str, sizes))}")
        lab.ready.difference_update(everyone)
        lab.start(everyone, image=bench.fleet_image)
        lab.install_ca(everyone)
        offset = 0
        for size in sizes:
            names = everyone[offset:offset + size]
            offset += size
            first = ansible.converge(names, f"fleet-{number}-{size}-first")
            log(f"  {size} relay(s): first {first['seconds']} s")
            for pair in range(1, pairs + 1):
                label = f"fleet-{number}-{size}-{pair}"
                if pair % 2:
                    pinged = ansible.ping(names, f"{label}-ping")
                    noop = ansible.converge(names, f"{label}-noop")
                else:
                    noop = ansible.converge(names, f"{label}-noop")
                    pinged = ansible.ping(names, f"{label}-ping")
                entry = {"run": number, "relays": size, "pair": pair, "ping_seconds": pinged["seconds"], "ping": pinged,
                         "noop": noop, "noop_to_ping": ratio(noop["seconds"], pinged["seconds"])}
                results.append(dict(entry, first=first) if pair == 1 else entry)
                log(f"  {size} relay(s), pair {pair}: ping {pinged['seconds']} s, no-op {noop['seconds']} s")
        if bench.keep_fleet and number == runs:
            lab.ready.update(everyone)
        else:
            lab.remove(everyone)
    medians = {}
    for size in sizes:
        mine = [r for r in results if r["relays"] == size]
        cpu = {f"{run}_{where}_cpu_seconds": median([r[run].get(f"{where}_cpu_seconds") for r in mine])
               for run in ("ping", "noop") for where in ("controller", "hosts")}
        medians[str(size)] = {"first_seconds": median([r["first"]["seconds"] for r in mine if "first" in r]),
                              "ping_seconds": median([r["ping_seconds"] for r in mine]),
                              "noop_seconds": median([r["noop"]["seconds"] for r in mine]),
                              "noop_changed": median([r["noop"]["changed"] for r in mine]),
                              "noop_to_ping": median([r["noop_to_ping"] for r in mine]), **cpu}
    return {"packages": "preinstalled" if bench.fleet_image == PREINSTALLED_IMAGE else "fresh", "runs": results, "median": medians}
