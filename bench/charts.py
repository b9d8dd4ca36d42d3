"""The charts of docs/performance.md (PNG, matplotlib), drawn from the figures of docs/bench-raw.json.

fleet.png: the fleet's first converge, no-op rerun and `ansible -m ping` against N, with the no-op target.
failover.png: failover latency per case, the role's settings against Postfix's defaults, with the target.
throughput.png: messages per second straight to A and through the relay without and with connection reuse.
"""
import matplotlib

from figure_failover import CASES, SETTINGS
from figure_throughput import VARIANTS
from lab import ROOT

matplotlib.use("Agg")
# pylint: disable=wrong-import-position
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen before pyplot is loaded)

CHARTS = ROOT / "docs" / "performance"
COLORS = {"first": "#1f77b4", "noop": "#d62728", "ping": "#7f7f7f", "role": "#2ca02c", "postfix_default": "#ff7f0e",
          "role_timeout_postfix_limit": "#9467bd", "target": "#444444"}


def save(fig, name):
    """Write one chart and close it."""
    CHARTS.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(CHARTS / name, dpi=110)
    plt.close(fig)


def fleet(fig_data):
    """Seconds against the number of relays: medians as lines, each run as a dot."""
    sizes = [int(size) for size in fig_data["median"]]
    fig, axis = plt.subplots(figsize=(8, 4.8))
    series = (("first", "first converge", lambda r: r.get("first", {}).get("seconds")), ("noop", "no-op rerun", lambda r: r["noop"]["seconds"]),
              ("ping", "ansible -m ping over the same N", lambda r: r.get("ping_seconds")))
    for key, name, value in series:
        medians = [fig_data["median"][str(size)].get(f"{key}_seconds") for size in sizes]
        if None in medians:
            continue
        axis.plot(sizes, medians, marker="o", color=COLORS[key], label=name)
        dots = [(r["relays"], value(r)) for r in fig_data["runs"] if value(r) is not None]
        axis.scatter(*zip(*dots), color=COLORS[key], alpha=0.3, s=14)
    pings = [fig_data["median"][str(size)].get("ping_seconds") for size in sizes]
    if None not in pings:
        axis.plot(sizes, [1.5 * ping for ping in pings], linestyle="--", color=COLORS["target"], label="target: 1.5 x ping")
    axis.set(xlabel="relays in one play (forks = relays)", ylabel="seconds (wall clock)", xticks=sizes, ylim=(0, None),
             title=f"Fleet: one play over N relays (packages {fig_data['packages']})")
    axis.grid(alpha=0.3)
    axis.legend()
    save(fig, "fleet.png")


def failover(fig_data):
    """Grouped bars: one group per case, one bar per setting, the 6 s target as a line."""
    fig, axis = plt.subplots(figsize=(9, 4.8))
    cases = [case for case in CASES if any(r["case"] == case for r in fig_data["runs"])]
    width = 0.8 / len(SETTINGS)
    for index, (setting, name) in enumerate(SETTINGS.items()):
        values = [fig_data["median"].get(f"{setting}_{case}") for case in cases]
        positions = [number + (index - (len(SETTINGS) - 1) / 2) * width for number in range(len(cases))]
        shown = [(x, y) for x, y in zip(positions, values) if y is not None]
        if not shown:
            continue
        params = ", ".join(f"{key.removeprefix('smtp_')} {value}" for key, value in fig_data["settings"][setting].items())
        legend = f"{name} ({params})"
        bars = axis.bar(*zip(*shown), width, color=COLORS[setting], label=legend)
        axis.bar_label(bars, fmt="%.1f s", fontsize=8, padding=2)
    axis.axhline(6, linestyle="--", color=COLORS["target"], label="target: 6 s")
    axis.set_xticks(range(len(cases)), [CASES[case].replace(", ", ",\n") for case in cases])
    axis.set(ylabel="seconds until the message is at B", title="Failover to fallback B while primary A is down")
    axis.margins(y=0.12)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8, loc="upper left")
    save(fig, "failover.png")


def throughput(fig_data):
    """Horizontal bars of messages per second, with the SMTP sessions A saw."""
    fig, axis = plt.subplots(figsize=(8, 3.6))
    names = list(VARIANTS)
    rates = [fig_data["median"][name]["messages_per_second"] for name in names]
    bars = axis.barh(range(len(names)), rates, color=["#7f7f7f", "#ff7f0e", "#2ca02c"])
    labels = [f"{rate:.1f} msg/s\n{fig_data['median'][name]['sessions_at_a']:.0f} SMTP sessions for {fig_data['messages'][name]} messages"
              for name, rate in zip(names, rates)]
    axis.bar_label(bars, labels=labels, fontsize=8, padding=3)
    axis.set_yticks(range(len(names)), [VARIANTS[name].replace(", ", ",\n") for name in names], fontsize=8)
    axis.set(xlabel="messages per second until all are in A's Maildir", title="Throughput: small messages to upstream A")
    axis.set_xlim(0, max(rates) * 1.8)
    axis.invert_yaxis()
    axis.grid(axis="x", alpha=0.3)
    save(fig, "throughput.png")


def draw(figures):
    """Every chart whose figure was measured."""
    for key, func in (("fleet", fleet), ("failover", failover), ("throughput", throughput)):
        if key in figures:
            func(figures[key])
