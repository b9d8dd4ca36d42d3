"""Figures 4 and 5, throughput and memory: small messages through the relay, with and without TLS connection reuse.

BENCH_MESSAGES small messages are injected into the relay with Postfix's `smtp-source` and timed until all
are in A's Maildir, with the role's `smtp_tls_connection_reuse` on. Side by side in the same run: the relay
with reuse off, and messages sent from the relay container straight to A, each in its own SMTP session with
STARTTLS and AUTH (direct_send.py). Those two open one session per message, so their rate does not depend
on the count: they send BENCH_REFERENCE_MESSAGES. Postfix's memory on the relay is sampled meanwhile.
"""
import shlex
import time

from lab import (CA_BUNDLE, LAB, RELAY, RECIPIENT, SENDER, UPSTREAM_A, Lab, log, median, ratio, ready_relays, send_mail,
                 set_postfix, wait_queue_empty, waiter, waiter_result)

KEY = "throughput"
TITLE = "4. Relay throughput and 5. peak memory"
VARIANTS = {"direct": "straight to A, one STARTTLS+AUTH session per message",
            "relay_reuse_off": "through the relay, TLS connection reuse off",
            "relay_reuse_on": "through the relay, TLS connection reuse on (role default)"}

# Resident and anonymous resident memory (KiB, "RSS ANON") summed over Postfix's master and its children.
# RSS counts shared pages (libraries) once per process; RssAnon is each process's own heap and stack.
# (From /proc/PID/status: smaps, which would give PSS, needs ptrace rights a podman exec does not have.)
MEMORY_NOW = ("for p in $(ps -o pid= --ppid $(cat /var/spool/postfix/pid/master.pid) -p $(cat /var/spool/postfix/pid/master.pid));"
              " do cat /proc/$p/status 2>/dev/null; done | awk '/^VmRSS:/ {r += $2} /^RssAnon:/ {a += $2} END {print r + 0, a + 0}'")
# The same every 0.5 s until /tmp/bn-mem-stop exists; prints the peaks.
MEMORY_SAMPLER = f"""
rss=0; anon=0; echo ready
while [ ! -e /tmp/bn-mem-stop ]; do
  set -- $({MEMORY_NOW})
  [ "$1" -gt "$rss" ] && rss=$1
  [ "$2" -gt "$anon" ] && anon=$2
  sleep 0.5
done
echo $rss $anon
"""


def sessions_at_a():
    """Number of SMTP sessions upstream A's submission service (587) has logged so far."""
    found = Lab.sh(UPSTREAM_A, r"grep -c 'postfix/submission/smtpd\[[0-9]*\]: connect from' /var/log/postfix.log || true")
    return int(found.stdout.strip() or 0)


def throughput_once(variant, messages, password):
    """Seconds until `messages` small messages are in A's Maildir, A's SMTP sessions, and the relay's peak memory."""
    wait_queue_empty(RELAY)
    if variant != "direct":
        set_postfix(RELAY, {"smtp_tls_connection_reuse": "yes" if variant == "relay_reuse_on" else "no"})
        time.sleep(1)
    sessions = sessions_at_a()
    idle = [int(kib) for kib in Lab.sh(RELAY, MEMORY_NOW).stdout.split()]
    Lab.sh(RELAY, "rm -f /tmp/bn-mem-stop")
    sampler = Lab.background(RELAY, ["sh", "-c", MEMORY_SAMPLER])
    proc = waiter(UPSTREAM_A, "count", messages, 600)
    start = time.time()
    try:
        if variant == "direct":
            Lab.sh(RELAY, shlex.join(["python3", "/usr/local/bin/bn-direct-send", UPSTREAM_A, "587",
                                      LAB["lab_accounts"]["upstream_a"]["name"], CA_BUNDLE, str(messages), SENDER, RECIPIENT]),
                   stdin=password + "\n")
        else:
            Lab.sh(RELAY, f"smtp-source -s 5 -m {messages} -f {SENDER} -t {RECIPIENT} 127.0.0.1:25")
        arrival = waiter_result(proc, f"{messages} messages ({variant}) at A")
    finally:
        proc.kill()
        Lab.sh(RELAY, "touch /tmp/bn-mem-stop")
        peak = [int(kib) for kib in sampler.communicate(timeout=30)[0].split()]
    seconds = round(arrival - start, 3)
    return {"variant": variant, "messages": messages, "seconds": seconds, "messages_per_second": round(messages / seconds, 1),
            "sessions_at_a": sessions_at_a() - sessions, "idle_rss_kib": idle[0], "idle_anon_kib": idle[1],
            # The direct sender is not Postfix: the relay's Postfix stays idle then.
            "peak_rss_kib": peak[0] if variant != "direct" else None, "peak_anon_kib": peak[1] if variant != "direct" else None}


def measure(bench):
    """The variants in each run (their order rotated per run), and the medians with the ratios per run."""
    runs, messages, reference = bench.settings["runs"], bench.settings["messages"], bench.settings["reference_messages"]
    ready_relays(bench.lab, bench.ansible, 1)
    counts = {"direct": reference, "relay_reuse_off": reference, "relay_reuse_on": messages}
    password = LAB["lab_accounts"]["upstream_a"]["password"]
    original = Lab.sh(RELAY, "postconf -h smtp_tls_connection_reuse").stdout.strip()
    variants = list(VARIANTS)
    results = []
    send_mail(RELAY, "bn-warm-up", "Warm-up.")
    wait_queue_empty(RELAY)
    try:
        for number in range(1, runs + 1):
            # Rotate the order per run so the machine's drift is spread over the variants.
            shift = (number - 1) % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                result = throughput_once(variant, counts[variant], password)
                result["run"] = number
                results.append(result)
                log(f"throughput run {number}/{runs}: {variant}: {result['messages_per_second']} msg/s, "
                    f"{result['sessions_at_a']} sessions at A, peak RSS {result['peak_rss_kib']} KiB, RssAnon {result['peak_anon_kib']} KiB")
    finally:
        set_postfix(RELAY, {"smtp_tls_connection_reuse": original})
    medians = {}
    for variant in variants:
        mine = [r for r in results if r["variant"] == variant]
        medians[variant] = {key: median([r[key] for r in mine])
                            for key in ("seconds", "messages_per_second", "sessions_at_a", "idle_rss_kib", "idle_anon_kib",
                                        "peak_rss_kib", "peak_anon_kib")}
    by_run = {(r["run"], r["variant"]): r["messages_per_second"] for r in results}
    for variant, base in (("relay_reuse_off", "direct"), ("relay_reuse_on", "direct"), ("relay_reuse_on", "relay_reuse_off")):
        medians[variant][f"vs_{base.removeprefix('relay_')}"] = median([ratio(by_run[(n, variant)], by_run[(n, base)])
                                                                       for n in range(1, runs + 1)])
    return {"messages": counts, "runs": results, "median": medians}
