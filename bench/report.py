"""docs/performance.md from docs/bench-raw.json (this run) and docs/bench-history.json (every recorded run).

Every figure in the page comes from those two files; the prose around them holds no measured figure.
Top to bottom: the targets, the charts, one section per figure, this run against the previous recorded
run, the history, and how it is measured.
"""
import figure_converge
import figure_failover
import figure_fleet
import figure_throughput
from charts import draw
from figure_failover import CASES as FAILOVER_CASES, SETTINGS as FAILOVER_SETTINGS
from figure_throughput import VARIANTS as THROUGHPUT_VARIANTS
from lab import CONNECTIONS, MULTI_HOSTS, ROOT, median

REPORT_MD = ROOT / "docs" / "performance.md"


def fmt(value, unit="", digits=1):
    """A number for the tables; '-' when not measured."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}{unit}"


def each(values, digits=1):
    """The individual runs, for the reader who wants to see the spread."""
    return ", ".join(fmt(value, digits=digits) for value in values)


def dig(medians, *path):
    """medians[path[0]][path[1]]..., None where a step is missing (older runs measured less)."""
    for key in path:
        if not isinstance(medians, dict) or medians.get(key) is None:
            return None
        medians = medians[key]
    return medians


# ---- targets (issue 15) -----------------------------------------------------------------------

def targets(figs):
    """Rows: target, measured, measured side by side, verdict. Each limit is stated once, here."""
    rows = []

    def row(label, value, unit, limit, compared, at_least=False):
        ok = None if value is None else (value >= limit if at_least else value <= limit)
        verdict = "not measured" if ok is None else ("met" if ok else "**missed**")
        rows.append((label, fmt(value, unit, 2 if unit == "x" else 1), compared, verdict))

    conv = dig(figs, "converge", "median") or {}
    row("no-op rerun at most 1.5x `ansible -m ping` on the same host", conv.get("noop_to_ping"), "x", 1.5,
        f"no-op {fmt(conv.get('noop_seconds'), ' s')}, ping {fmt(conv.get('ping_seconds'), ' s')}")
    row("first converge at most the package install + 5 s", conv.get("first_minus_packages_seconds"), " s", 5,
        f"first converge {fmt(conv.get('first_seconds'), ' s')}, package install {fmt(conv.get('package_install_seconds'), ' s')}")
    for size, med in (dig(figs, "fleet", "median") or {}).items():
        row(f"fleet of {size}: no-op at most 1.5x `ansible -m ping` over the same {size}", med.get("noop_to_ping"), "x", 1.5,
            f"no-op {fmt(med.get('noop_seconds'), ' s')}, ping {fmt(med.get('ping_seconds'), ' s')}")
    fail = dig(figs, "failover", "median") or {}
    for case in ("dropped", "multi_dropped"):
        row(f"failover to B at most 6 s when {FAILOVER_CASES[case]}", fail.get(f"role_{case}"), " s", 6,
            f"Postfix's defaults {fmt(fail.get(f'postfix_default_{case}'), ' s')}")
    thr = dig(figs, "throughput", "median") or {}
    row("relay throughput at least 2x one TLS+AUTH session per message", dig(thr, "relay_reuse_on", "vs_direct"), "x", 2,
        f"{fmt(dig(thr, 'relay_reuse_on', 'messages_per_second'), ' msg/s')} against {fmt(dig(thr, 'direct', 'messages_per_second'), ' msg/s')}",
        at_least=True)
    lines = ["| target | measured (median) | side by side in the same run | |", "|---|---:|---|---|"]
    return lines + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]


# ---- one section per figure -------------------------------------------------------------------

def task_table(runs, which, title):
    """Median seconds per task (ansible.posix.profile_tasks) of the first converge or the no-op."""
    names = {name for r in runs for name in r[which].get("slowest_tasks", {})}
    slowest = sorted(((median([r[which].get("slowest_tasks", {}).get(name) for r in runs]), name) for name in names), reverse=True)
    if not slowest:
        return []
    return ["", f"{title} (profile_tasks, median seconds; the play's total includes Ansible's start-up):", "",
            "| task | seconds |", "|---|---:|"] + [f"| {name} | {fmt(sec, digits=2)} |" for sec, name in slowest]


def render_converge(fig):
    """Table of figure 1, and where the first converge and the no-op spend their time."""
    med, runs = fig["median"], fig["runs"]
    rows = [
        ("`ansible -m ping` (floor)", fmt(med["ping_seconds"], " s"), "", each([r["ping_seconds"] for r in runs])),
        ("package install reference (`apt-get update` + install)", fmt(med["package_install_seconds"], " s"), "",
         each([r["package_install_seconds"] for r in runs])),
        ("first converge", fmt(med["first_seconds"], " s"), f"{med['first_tasks']:.0f} / {med['first_changed']:.0f}",
         each([r["first"]["seconds"] for r in runs])),
        ("first converge minus package install", fmt(med["first_minus_packages_seconds"], " s"), "",
         each([r["first_minus_packages_seconds"] for r in runs])),
        ("no-op rerun", fmt(med["noop_seconds"], " s"), f"{med['noop_tasks']:.0f} / {med['noop_changed']:.0f}",
         each([r["noop"]["seconds"] for r in runs])),
        ("no-op rerun / ping floor", fmt(med["noop_to_ping"], "x", 2), "", each([r["noop_to_ping"] for r in runs], 2)),
    ]
    lines = ["| measure | median | tasks run / changed | runs |", "|---|---:|---:|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    cpu = [f"{fmt(median([r.get(run, {}).get('controller_cpu_seconds') for r in runs]), ' s', 2)} / "
           f"{fmt(median([r.get(run, {}).get('hosts_cpu_seconds') for r in runs]), ' s', 2)}" for run in ("ping", "noop")]
    lines += ["", "CPU seconds (median): Ansible on the controller (with its forks and ssh clients) / the relay's container:", "",
              "| `ansible -m ping` | no-op rerun |", "|---:|---:|", "| " + " | ".join(cpu) + " |"]
    return lines + task_table(runs, "first", "Tasks of the first converge") + task_table(runs, "noop", "Tasks of the no-op rerun")


def render_fleet(fig):
    """Table of figure 2."""
    lines = [f"Packages: {fig['packages']} (see below).", "",
             "| relays (forks) | first converge | per relay | `ansible -m ping` | no-op rerun | per relay | no-op / ping | no-op changed "
             "| runs: first / pairs: ping / no-op / ratio |", "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for size, med in fig["median"].items():
        mine = [r for r in fig["runs"] if str(r["relays"]) == size]
        count = int(size)
        spread = " / ".join(each([value(r) for r in mine if value(r) is not None], digits) for value, digits in
                            ((lambda r: r.get("first", {}).get("seconds"), 1), (lambda r: r.get("ping_seconds"), 1),
                             (lambda r: r["noop"]["seconds"], 1), (lambda r: r.get("noop_to_ping"), 2)))
        lines.append(f"| {size} | {fmt(med['first_seconds'], ' s')} | {fmt(med['first_seconds'] / count, ' s')} | "
                     f"{fmt(med.get('ping_seconds'), ' s')} | {fmt(med['noop_seconds'], ' s')} | {fmt(med['noop_seconds'] / count, ' s')} | "
                     f"{fmt(med.get('noop_to_ping'), 'x', 2)} | {med['noop_changed']:.0f} | {spread} |")
    lines += ["", "CPU seconds of each play (median): Ansible on the controller (with its forks and ssh clients) and the relays' "
              "containers, which share the controller's CPUs in this lab:", "",
              "| relays | ping: controller / relays | no-op: controller / relays |",
              "|---:|---:|---:|"]
    for size, med in fig["median"].items():
        cells = [f"{fmt(med.get(f'{run}_controller_cpu_seconds'), ' s')} / {fmt(med.get(f'{run}_hosts_cpu_seconds'), ' s')}"
                 for run in ("ping", "noop")]
        lines.append(f"| {size} | {' | '.join(cells)} |")
    return lines + ["", "![Fleet scaling](performance/fleet.png)"]


def render_failover(fig):
    """Table of figure 3, with the parameters of each setting and the addresses Postfix gave up on."""
    med, values = fig["median"], fig["settings"]
    lines = ["| setting | " + " | ".join(values[next(iter(values))]) + " |", "|---|" + "---:|" * len(values[next(iter(values))])]
    lines += [f"| {FAILOVER_SETTINGS[setting]} | " + " | ".join(params.values()) + " |" for setting, params in values.items()]
    multi = fig.get("multi", {})
    if multi:
        lines += ["", f"`{multi['name']}` resolves, on the relays, to {', '.join(multi['addresses'])} (one container each)."]
    lines += ["", "| primary | setting | median | runs | addresses whose connect timed out, from the relay's log (per run) |", "|---|---|---:|---|---|"]
    for case, label in FAILOVER_CASES.items():
        for setting, setting_label in FAILOVER_SETTINGS.items():
            mine = [r for r in fig["runs"] if r["setting"] == setting and r["case"] == case]
            if mine:
                lines.append(f"| {label} | {setting_label} | {fmt(med.get(f'{setting}_{case}'), ' s')} | {each([r['seconds'] for r in mine])} | "
                             f"{', '.join(str(len(r.get('timed_out', []))) for r in mine)} |")
    return lines + ["", "![Failover latency](performance/failover.png)"]


def render_throughput(fig):
    """Tables of figures 4 and 5."""
    med = fig["median"]
    lines = ["| variant | messages | msg/s | seconds | SMTP sessions at A | vs direct | runs (msg/s) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for variant, label in THROUGHPUT_VARIANTS.items():
        mine = [r["messages_per_second"] for r in fig["runs"] if r["variant"] == variant]
        lines.append(f"| {label} | {fig['messages'][variant]} | {fmt(med[variant]['messages_per_second'])} | {fmt(med[variant]['seconds'])} | "
                     f"{fmt(med[variant]['sessions_at_a'], digits=0)} | {fmt(med[variant].get('vs_direct'), 'x', 2)} | {each(mine)} |")
    lines += ["", "![Throughput](performance/throughput.png)",
              "", "Peak memory of the relay's Postfix processes (master and its children, summed, sampled every 0.5 s):", "",
              "| relay run | idle RSS | peak RSS | idle RssAnon | peak RssAnon | runs (peak RSS) |", "|---|---:|---:|---:|---:|---|"]
    for variant in ("relay_reuse_off", "relay_reuse_on"):
        mine = [r["peak_rss_kib"] / 1024 for r in fig["runs"] if r["variant"] == variant]
        sizes = [fmt(med[variant][key] / 1024, " MiB") for key in ("idle_rss_kib", "peak_rss_kib", "idle_anon_kib", "peak_anon_kib")]
        lines.append(f"| {THROUGHPUT_VARIANTS[variant]} | {' | '.join(sizes)} | {each(mine)} |")
    return lines


SECTIONS = ((figure_converge, render_converge), (figure_fleet, render_fleet), (figure_failover, render_failover),
            (figure_throughput, render_throughput))


# ---- this run against the previous one, and the history ---------------------------------------

def headlines(medians):
    """(measure, value, unit) of a run's medians: the figures the history and the comparison show."""
    found = [("no-op rerun / `ansible -m ping`, one relay", dig(medians, "converge", "noop_to_ping"), "x"),
             ("no-op rerun, one relay", dig(medians, "converge", "noop_seconds"), " s"),
             ("first converge minus package install", dig(medians, "converge", "first_minus_packages_seconds"), " s"),
             ("first converge: tasks run", dig(medians, "converge", "first_tasks"), ""),
             ("no-op rerun: tasks run", dig(medians, "converge", "noop_tasks"), "")]
    for size in dig(medians, "fleet") or {}:
        found += [(f"fleet of {size}: first converge", dig(medians, "fleet", size, "first_seconds"), " s"),
                  (f"fleet of {size}: no-op rerun", dig(medians, "fleet", size, "noop_seconds"), " s"),
                  (f"fleet of {size}: no-op / `ansible -m ping`", dig(medians, "fleet", size, "noop_to_ping"), "x")]
    for case in FAILOVER_CASES:
        found.append((f"failover, {FAILOVER_CASES[case]} (role)", dig(medians, "failover", f"role_{case}"), " s"))
    found += [("throughput with reuse (role)", dig(medians, "throughput", "relay_reuse_on", "messages_per_second"), " msg/s"),
              ("throughput with reuse / direct", dig(medians, "throughput", "relay_reuse_on", "vs_direct"), "x")]
    return found


def label(entry):
    """Date and commit of a history entry."""
    commit = entry.get("commit") or (f"recorded in {entry['recorded_in']}" if entry.get("recorded_in") else "commit not recorded")
    return f"{entry['date']} ({commit}{', uncommitted changes' if entry.get('dirty') else ''})"


def compare(current, previous, called="Previous recorded run"):
    """This run's headline figures next to an earlier recorded run's (the previous one, or a milestone)."""
    if not previous:
        return ["No earlier run is recorded in [bench-history.json](bench-history.json)."]
    old = {name: (value, unit) for name, value, unit in headlines(previous["medians"])}
    lines = [f"{called}: {label(previous)}.", ""]
    if previous.get("machine") != current.get("machine"):
        differs = ", ".join(f"{key} {previous['machine'].get(key)} then, {value} now" for key, value in current["machine"].items()
                            if previous["machine"].get(key) != value)
        lines += [f"It ran on another machine or software ({differs}): seconds do not compare across machines; the ratios "
                  "to a floor measured in the same run (no-op / ping, throughput / direct) and counts (tasks) do.", ""]
    lines += ["| measure | that run | this run | change |", "|---|---:|---:|---:|"]
    for name, value, unit in headlines(current["medians"]):
        before = old.get(name, (None, unit))[0]
        digits = 2 if unit == "x" else 1
        change = "-" if None in (value, before) else f"{value - before:+.{digits}f}{unit}" + (f" ({(value - before) / before:+.0%})" if before else "")
        lines.append(f"| {name} | {fmt(before, unit, digits)} | {fmt(value, unit, digits)} | {change} |")
    return lines


def history_table(entries):
    """One row per recorded run, oldest first."""
    sizes = sorted({size for entry in entries for size in dig(entry["medians"], "fleet") or {}}, key=int)
    lines = ["| run | connection | no-op / ping | first converge - packages | fleet first converge (N = " + " / ".join(sizes)
             + ") | fleet no-op | failover, A drops (role) | reuse / direct | bench |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for entry in entries:
        med = entry["medians"]
        fleet = [" / ".join(fmt(dig(med, "fleet", size, key)) for size in sizes) for key in ("first_seconds", "noop_seconds")]
        # The first runs did not record the connection: they used the podman connection plugin.
        connection = (entry.get("settings") or {}).get("connection", "podman")
        lines.append(f"| {label(entry)} | {connection} | {fmt(dig(med, 'converge', 'noop_to_ping'), 'x', 2)} | "
                     f"{fmt(dig(med, 'converge', 'first_minus_packages_seconds'), ' s')} | {fleet[0]} | {fleet[1]} | "
                     f"{fmt(dig(med, 'failover', 'role_dropped'), ' s')} | {fmt(dig(med, 'throughput', 'relay_reuse_on', 'vs_direct'), 'x', 2)} | "
                     f"{fmt((entry.get('total_seconds') or 0) / 60 or None, ' min')} |")
    return lines


# ---- the page ---------------------------------------------------------------------------------

def method(settings):
    """How it is measured: prose without measured figures (the settings are this run's)."""
    return f"""\
## How it is measured

- `make bench` runs `bench/run.py`: it starts its own containers (`smarthost-bn-*`, static addresses from
  the bench's range of the `smarthost-lab` network, see `bench/lab.py`) from the lab image plus an SSH server
  (an image the bench builds and removes again): Ansible reaches them over SSH with pipelining, as it reaches
  a fleet (`BENCH_CONNECTION=podman` uses the podman connection plugin instead, which cannot pipeline).
  It prepares upstream A and fallback B with `molecule/shared/prepare.yml` (the `sink` role: STARTTLS on
  587, AUTH required, self-signed CA) and converges relays with `molecule/shared/converge.yml` (the
  `relay` role with the lab's upstreams, applied with `roles:` as the README and `playbooks/relay.yml` do: per
  relay, Ansible's check of the role's argument spec, then the role's one task).
- Each figure is the median of {settings['runs']} runs (`BENCH_RUNS`); every comparison (floor, reference,
  variant) is measured inside the same run and ratios are taken per run (per pair in figure 2). The machine is shared and
  noisy: compare the ratios, not the absolute seconds.
- Figure 1 (`bench/figure_converge.py`): each run starts two fresh containers: one gets the relay's first
  converge (package install included), then `ansible -m ping`, then the no-op rerun (the role's
  one relay_config run: it looks up the OS itself, so there is no fact gathering to cache); the other
  container times the bare package install (`apt-get update` and `apt-get install postfix
  libsasl2-modules`, noninteractive with debconf's defaults, as the role's module runs them). Task times
  are profile_tasks'; CPU seconds are Ansible's on the controller (the children's rusage: the forks and
  ssh clients) and the relay container's (its cgroup's cpuacct.usage).
- Figure 2 (`bench/figure_fleet.py`): N = {', '.join(map(str, settings['fleet']))} fresh relays
  (`BENCH_FLEET`) converged in one play with `forks = N`, then {settings.get('fleet_pairs', 1)} pairs
  (`BENCH_FLEET_PAIRS`) of `ansible -m ping` over the same N relays with `forks = N` and the no-op rerun,
  the ping first in odd pairs and the no-op first in even ones; the ratio is taken per pair, and its
  median is over the pairs of all runs. With
  `BENCH_FLEET_PACKAGES=preinstalled` (the default) they start from an image with the packages installed
  the same way (committed from a container, not timed): the figure shows the role's own cost, figure 1 the
  package install. The relays are containers on the controller's own CPUs: their CPU seconds and the
  controller's add up on the same cores, which a fleet of real hosts would not.
- Figure 3 (`bench/figure_failover.py`): converged relays, half with the role's settings, half with
  Postfix's defaults of `smtp_connect_timeout` and `smtp_mx_address_limit` (`postconf -e` and a reload).
  A message is submitted with `sendmail` on all of them at the same moment while the primary is down:
  A refusing (Postfix stopped), A dropping packets (an nft rule on A), and a primary whose name has
  {len(MULTI_HOSTS)} addresses (containers sharing a podman network alias, so the lab's DNS answers with
  one A record each; the bench checks that the relays resolve all of them) that all drop packets. For that
  case the relays are converged with that name as the primary (no preflight: it cannot answer), and the
  addresses Postfix gave up on are counted from its `connect to ...: Connection timed out` log lines. The
  role's relays then run the case once more with Postfix's default address limit. Each case starts after
  a reload of every relay's Postfix, so no connection cached by the previous case carries over; one
  message through B goes first on each relay, not counted (the lab's DNS can miss look-ups right after
  containers were started or removed).
- Figure 4 (`bench/figure_throughput.py`): {settings['messages']} small messages (`BENCH_MESSAGES`) injected
  into the relay with Postfix's `smtp-source -s 5`, timed until all are in A's Maildir, with TLS connection
  reuse on and off, and {settings['reference_messages']} (`BENCH_REFERENCE_MESSAGES`) sent straight to A
  from the relay container, each in its own SMTP session with STARTTLS and AUTH (Python smtplib).
- Figure 5: Postfix's master and its children on the relay, from `/proc/PID/status`, summed and sampled
  during the throughput runs. RSS counts shared pages once per process; RssAnon is each process's own.
- History: every `make bench` that measures all figures appends its medians, date and commit to
  [bench-history.json](bench-history.json); the runs before it were imported from the versions of
  bench-raw.json in git (`bench/run.py --import-history`), which did not record the commit they measured.
"""


def render(data, entries):
    """The markdown page."""
    mach, figs = data["machine"], data["figures"]
    current = next((entry for entry in entries if entry["date"] == mach["date"]), None)
    previous = [entry for entry in entries if entry["date"] < mach["date"]]
    out = ["# Performance", "",
           "Generated by `make bench` (`bench/run.py`, `bench/report.py`) from [bench-raw.json](bench-raw.json) (this run) "
           "and [bench-history.json](bench-history.json) (every recorded run); do not edit by hand.", "",
           f"Measured {mach['date']} at commit {mach.get('commit') or 'unknown'}{' with uncommitted changes' if mach.get('dirty') else ''} "
           f"on {mach['cpus']} CPUs ({mach['cpu_model']}), {mach['memory_gib']} GiB RAM, kernel {mach['kernel']}, podman {mach['podman']}, "
           f"{mach['ansible_core']}, image {mach['lab_image']}; {mach.get('connection', CONNECTIONS['podman'])}; "
           f"{data['settings']['runs']} runs per figure.", "",
           "Bench time on this machine: lab set-up " + fmt(data.get("setup_seconds", 0) / 60, " min") + ", "
           + ", ".join(f"{key} {fmt(fig.get('bench_seconds', 0) / 60, ' min')}" for key, fig in figs.items()) + ".", "",
           "Reproduce: `make bench` (all figures) or `.venv/bin/python bench/run.py converge|fleet|failover|throughput` "
           "after `make setup` with the Makefile's environment.", "",
           "## Targets", "",
           "Issue 15's targets, each measured side by side with its floor in the same run. Where one is missed, the "
           "no-op's task times and CPU seconds (figures 1 and 2) show where the time goes.", ""] + targets(figs)
    for module, func in SECTIONS:
        key = module.KEY
        out += ["", f"## {module.TITLE}", ""]
        if key in figs:
            if figs[key].get("date") and figs[key]["date"] != mach["date"]:
                out += [f"Measured {figs[key]['date']}.", ""]
            out += func(figs[key])
        else:
            out.append("Not measured yet: run `bench/run.py " + key + "`.")
    out += ["", "## This run against the previous recorded run", ""]
    out += compare(current, previous[-1] if previous else None) if current else [
        "This run measured only some figures, so it is not in the history: run all of them to compare."]
    # A milestone is a note recorded by hand in bench-history.json on the last run before a redesign.
    for entry in (entry for entry in previous if entry.get("milestone")) if current else ():
        out += ["", f"## This run against {entry['milestone']}", ""]
        out += compare(current, entry, "That run")
    out += ["", "## History of the recorded runs", ""] + history_table(entries)
    return "\n".join(out + ["", method(data["settings"])])


def write(data, entries):
    """docs/performance.md and its charts; returns the page."""
    draw(data["figures"])
    text = render(data, entries)
    REPORT_MD.write_text(text, encoding="utf-8")
    return text
