"""Figure 2, fleet: N relays in one play (forks = N), the first converge, the no-op rerun, and the ping over the same N.

Each run starts the relays of every size at once (booting them is not measured), then for one size after
the other, each on its own relays: the first converge, `ansible -m ping` over those N relays, then the no-op
rerun. At the end of the run it removes them all: a converged relay is idle, and removing containers can make
the lab's DNS miss look-ups (the next converge's preflight) for a moment.
"""
from lab import PREINSTALLED_IMAGE, fleet_names, log, median, ratio

KEY = "fleet"
TITLE = "2. Fleet: N relays in one play"


def measure(bench):
    """The runs and the medians per size; with bench.keep_fleet the last run's relays stay for the failover figure."""
    lab, ansible, runs, sizes = bench.lab, bench.ansible, bench.settings["runs"], bench.settings["fleet"]
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
            pinged = ansible.ping(names, f"fleet-{number}-{size}-ping")
            ping = pinged["seconds"]
            noop = ansible.converge(names, f"fleet-{number}-{size}-noop")
            results.append({"run": number, "relays": size, "first": first, "ping_seconds": ping, "ping": pinged, "noop": noop,
                            "noop_to_ping": ratio(noop["seconds"], ping)})
            log(f"  {size} relay(s): first {first['seconds']} s, ping {ping} s, no-op {noop['seconds']} s")
        if bench.keep_fleet and number == runs:
            lab.ready.update(everyone)
        else:
            lab.remove(everyone)
    medians = {}
    for size in sizes:
        mine = [r for r in results if r["relays"] == size]
        cpu = {f"{run}_{where}_cpu_seconds": median([r[run].get(f"{where}_cpu_seconds") for r in mine])
               for run in ("ping", "noop") for where in ("controller", "hosts")}
        medians[str(size)] = {"first_seconds": median([r["first"]["seconds"] for r in mine]),
                              "ping_seconds": median([r["ping_seconds"] for r in mine]),
                              "noop_seconds": median([r["noop"]["seconds"] for r in mine]),
                              "noop_changed": median([r["noop"]["changed"] for r in mine]),
                              "noop_to_ping": median([r["noop_to_ping"] for r in mine]), **cpu}
    return {"packages": "preinstalled" if bench.fleet_image == PREINSTALLED_IMAGE else "fresh", "runs": results, "median": medians}
