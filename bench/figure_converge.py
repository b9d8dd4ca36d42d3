"""Figure 1, converge: the first converge of a fresh relay and its no-op rerun, next to their floors.

Each run starts two fresh containers: one gets the relay's first converge (package install included),
then `ansible -m ping`, then the no-op rerun (the role's one module run); the other times the bare
package install. The targets compare the first converge with the package install and the no-op with
the ping, per run.
"""
from lab import PACKAGE_INSTALL, PACKAGES, REFERENCE_RELAY, RELAY, log, median, ratio, timed

KEY = "converge"
TITLE = "1. Converge: one fresh Debian 12 relay"


def measure(bench):
    """The runs and their medians.

    The fresh relays of the last two runs stay, converged: RELAY for the failover and throughput
    figures, REFERENCE_RELAY for the failover reference (two converges less in the bench).
    """
    lab, ansible, runs = bench.lab, bench.ansible, bench.settings["runs"]
    results = []
    for number in range(1, runs + 1):
        keep = number >= runs - 1
        relay = REFERENCE_RELAY if number == runs - 1 else RELAY
        log(f"converge run {number}/{runs}: fresh relay ({relay}) and a fresh package-install reference")
        lab.ready.discard(relay)
        lab.start([PACKAGES, relay])
        lab.install_ca([relay])
        packages = timed(lab.sh, PACKAGES, PACKAGE_INSTALL)[0]
        first = ansible.converge([relay], f"converge-{number}-first")
        pinged = ansible.ping([relay], f"converge-{number}-ping")
        ping = pinged["seconds"]
        noop = ansible.converge([relay], f"converge-{number}-noop")
        lab.remove([PACKAGES] if keep else [PACKAGES, relay])
        if keep:
            lab.ready.add(relay)
        results.append({"run": number, "ping_seconds": ping, "ping": pinged, "package_install_seconds": packages, "first": first, "noop": noop,
                        "first_minus_packages_seconds": round(first["seconds"] - packages, 3),
                        "noop_to_ping": ratio(noop["seconds"], ping)})
        log(f"  ping {ping} s, packages {packages} s, first {first['seconds']} s, no-op {noop['seconds']} s")
    return {"runs": results, "median": {
        "ping_seconds": median([r["ping_seconds"] for r in results]),
        "package_install_seconds": median([r["package_install_seconds"] for r in results]),
        "first_seconds": median([r["first"]["seconds"] for r in results]),
        "first_tasks": median([r["first"]["tasks"] for r in results]),
        "first_changed": median([r["first"]["changed"] for r in results]),
        "first_minus_packages_seconds": median([r["first_minus_packages_seconds"] for r in results]),
        "noop_seconds": median([r["noop"]["seconds"] for r in results]),
        "noop_tasks": median([r["noop"]["tasks"] for r in results]),
        "noop_changed": median([r["noop"]["changed"] for r in results]),
        "noop_to_ping": median([r["noop_to_ping"] for r in results])}}
