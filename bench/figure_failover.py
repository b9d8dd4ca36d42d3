"""Figure 3, failover: seconds from a submission on the relay to its arrival at fallback B while the primary is down.

Cases: A refuses connections (its Postfix stopped); A drops packets (an nft rule on A); and a primary whose
name has several addresses that all drop packets (MULTI_NAME: containers sharing a network alias, each
with the nft rule). Settings, side by side: the role's (smtp_connect_timeout, smtp_mx_address_limit) on
half of the relays, Postfix's defaults of both on the other half; a pair is one run. For the several-address
case the role's relays run once more with the role's connect timeout and Postfix's default address limit,
which shows what each of the two parameters does.

Every case is measured once, on all relays at the same moment: the figure is bound by timeouts, not by the
machine, and the runs of Postfix's defaults would otherwise take minutes each. Each relay's figure is the
time from its submission to the file's modification time in B's Maildir (one host clock).
"""
import copy
import re
import uuid

from lab import (DROP_SMTP, LAB, MULTI_HOSTS, MULTI_NAME, UPSTREAM_A, UPSTREAM_B, BenchError, Lab, address, in_parallel, log, median,
                 ready_relays, send_mail, set_postfix, wait_queue_empty, waiter, waiter_result)

KEY = "failover"
TITLE = "3. Failover latency: submission on the relay to arrival at fallback B"
# The main.cf parameters that decide how long giving up on the primary takes.
PARAMETERS = ("smtp_connect_timeout", "smtp_mx_address_limit")
CASES = {"refused": "A refuses connections",
         "dropped": "A drops packets",
         "multi_dropped": f"A's name has {len(MULTI_HOSTS)} addresses, all drop packets"}
SETTINGS = {"role": "role's defaults",
            "postfix_default": "Postfix's defaults",
            "role_timeout_postfix_limit": "role's connect timeout, Postfix's address limit"}
# Postfix's log line for an address that did not answer: "connect to NAME[ADDRESS]:587: Connection timed out".
TIMED_OUT = re.compile(r"connect to (\S+?)\[([0-9.]+)\]:\d+: Connection timed out")


def break_upstream_a(case):
    """A refuses connections (Postfix stopped) or silently drops SMTP packets (nft)."""
    Lab.sh(UPSTREAM_A, "systemctl stop postfix" if case == "refused" else DROP_SMTP)


def repair_upstream_a(case):
    """Undo break_upstream_a."""
    Lab.sh(UPSTREAM_A, "systemctl start postfix" if case == "refused" else "nft delete table inet bn", check=False)


def warm_up(relay):
    """Relay one message first, so the first measurement does not pay for cold caches and processes.

    Done when the relay's queue is empty, wherever the message went: right after the bench starts or
    removes containers, the lab's DNS can miss a look-up of A, and the relay then rightly delivers through B.
    """
    send_mail(relay, f"bn-warm-up-{uuid.uuid4().hex[:12]}", "Warm-up.")
    wait_queue_empty(relay)


def postfix_log_since(relay, since):
    """The relay's Postfix log lines since the epoch second `since`."""
    return Lab.sh(relay, f"journalctl -q -o cat --since @{int(since)} SYSLOG_IDENTIFIER=postfix/smtp", check=False).stdout.splitlines()


def failover_once(case, relays):
    """Per relay, seconds from sendmail to arrival in B's Maildir while the primary is down, and the addresses
    Postfix gave up on; all relays submit at once. A failed delivery keeps the reason and drops the figure."""
    markers = {relay: f"bn-failover-{case}-{uuid.uuid4().hex[:12]}" for relay in relays}
    in_parallel(wait_queue_empty, relays)
    # A connection to B cached in the previous case would make this one faster: a reload ends the
    # idle SMTP clients and the connection cache.
    in_parallel(lambda relay: Lab.sh(relay, "postfix reload 2>/dev/null && sleep 0.5"), relays)
    procs = {relay: waiter(UPSTREAM_B, "marker", marker, 300) for relay, marker in markers.items()}
    if case in ("refused", "dropped"):
        break_upstream_a(case)
    submitted, results = {}, {}
    try:
        def submit(relay):
            submitted[relay] = send_mail(relay, markers[relay], "Failover benchmark.")
        in_parallel(submit, relays)
        for relay in relays:
            try:
                arrival = waiter_result(procs[relay], f"failover message {markers[relay]} at B")
                seconds = round(arrival - submitted[relay], 3)
            except BenchError as error:
                seconds = {"error": str(error)[:300], "relay_log": postfix_log_since(relay, submitted[relay] - 1)[-20:]}
                Lab.sh(relay, "postsuper -d ALL >/dev/null 2>&1", check=False)
            timed_out = [match.groups() for match in map(TIMED_OUT.search, postfix_log_since(relay, submitted[relay] - 1)) if match]
            results[relay] = {"seconds": seconds, "timed_out": [f"{name}[{ip}]" for name, ip in timed_out]}
    finally:
        for proc in procs.values():
            proc.kill()
        if case in ("refused", "dropped"):
            repair_upstream_a(case)
    return results


def parameters(relay, defaults=False):
    """The relay's live (or Postfix's default) values of PARAMETERS."""
    out = Lab.sh(relay, f"postconf {'-d ' if defaults else ''}{' '.join(PARAMETERS)}").stdout
    return dict(line.split(" = ", 1) for line in out.splitlines())


def multi_upstreams():
    """The lab's upstreams with MULTI_NAME as the primary (A's credentials and TLS policy, B as the fallback)."""
    upstreams = copy.deepcopy(LAB["lab_relay_upstreams"])
    upstreams[0]["host"] = MULTI_NAME
    return upstreams


def resolved(relay):
    """The addresses the relay's resolver gets for MULTI_NAME: the lab must give Postfix several."""
    found = sorted(set(Lab.sh(relay, f"getent ahostsv4 {MULTI_NAME} | cut -d' ' -f1").stdout.split()))
    wanted = sorted(address(name) for name in MULTI_HOSTS)
    if found != wanted:
        raise BenchError(f"{relay}: {MULTI_NAME} resolves to {found}, not to {wanted} (one per container of the alias)")
    return found


def measure(bench):
    """Every case on 2 x runs relays at once (role's settings on the even ones, Postfix's defaults on the odd ones)."""
    lab, ansible, runs = bench.lab, bench.ansible, bench.settings["runs"]
    relays = ready_relays(lab, ansible, 2 * runs)
    by_setting = {"role": relays[0::2], "postfix_default": relays[1::2]}
    values = {"role": parameters(relays[0]), "postfix_default": parameters(relays[0], defaults=True)}
    values["role_timeout_postfix_limit"] = dict(values["role"], smtp_mx_address_limit=values["postfix_default"]["smtp_mx_address_limit"])
    reference = values["postfix_default"]
    in_parallel(lambda relay: set_postfix(relay, reference), by_setting["postfix_default"])
    in_parallel(warm_up, relays)
    # Not measured: the first delivery to B of a run sometimes took seconds longer than the others (the
    # relay's log then shows no failed connection, only a slow connection set-up: look-ups that the lab's
    # DNS missed right after the bench started or removed containers), which is not what the figure is about.
    warm_ups = failover_once("refused", relays)
    log(f"failover warm-up through B: {[r['seconds'] for r in warm_ups.values()]} s (not counted)")
    measured = {case: failover_once(case, relays) for case in ("refused", "dropped")}

    log(f"converging {len(relays)} relays with {MULTI_NAME} as the primary upstream (no preflight: it drops packets)")
    ansible.converge(relays, "failover-multi-converge", extra_vars={"lab_relay_upstreams": multi_upstreams(), "relay_preflight": False})
    in_parallel(lambda relay: set_postfix(relay, reference), by_setting["postfix_default"])
    addresses = resolved(relays[0])
    in_parallel(resolved, relays)
    measured["multi_dropped"] = failover_once("multi_dropped", relays)
    # The role's relays again, with Postfix's address limit: one connect timeout per address.
    in_parallel(lambda relay: set_postfix(relay, values["role_timeout_postfix_limit"]), by_setting["role"])
    limit_runs = failover_once("multi_dropped", by_setting["role"])
    log(f"converging {len(relays)} relays back to the lab's upstreams")
    ansible.converge(relays, "failover-back-converge")

    results = []
    for case, per_relay in measured.items():
        for setting, mine in by_setting.items():
            results += entries(case, setting, mine, per_relay, values[setting])
    results += entries("multi_dropped", "role_timeout_postfix_limit", by_setting["role"], limit_runs, values["role_timeout_postfix_limit"])
    for entry in results:
        log(f"failover run {entry['run']}: {entry['setting']} on {entry['relay']}, {entry['case']}: {entry['seconds']} s, "
            f"gave up on {len(entry['timed_out'])} address(es)")
    medians = {f"{entry['setting']}_{entry['case']}": None for entry in results}
    for key in medians:
        medians[key] = median([entry["seconds"] for entry in results if f"{entry['setting']}_{entry['case']}" == key])
    warm_up_seconds = [r["seconds"] for r in warm_ups.values() if isinstance(r["seconds"], float)]
    return {"settings": values, "multi": {"name": MULTI_NAME, "addresses": addresses},
            "warm_up_through_b_seconds": max(warm_up_seconds) if warm_up_seconds else None, "runs": results, "median": medians}


def entries(case, setting, relays, per_relay, values):
    """One result per relay of a setting in a case."""
    found = []
    for number, relay in enumerate(relays, start=1):
        measured = per_relay[relay]
        entry = {"run": number, "setting": setting, "relay": relay, "case": case, "parameters": values,
                 "timed_out": measured["timed_out"]}
        if isinstance(measured["seconds"], dict):
            entry.update(seconds=None, **measured["seconds"])
        else:
            entry["seconds"] = measured["seconds"]
        found.append(entry)
    return found
