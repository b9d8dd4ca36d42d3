#!/usr/bin/env python
"""Benchmark the relay role on the local podman lab (`make bench`).

Usage: bench/run.py [converge|fleet|failover|throughput ...]   (default: all four)
       bench/run.py --render                                   (rewrite docs from docs/bench-raw.json)

Every figure is the median of BENCH_RUNS runs (default 3), and every comparison is measured
side by side inside each run, because the machine is shared: read the ratios, not the seconds.
Environment: BENCH_RUNS, BENCH_FLEET ("1 4 8"), BENCH_FLEET_PACKAGES (preinstalled | fresh),
BENCH_CONNECTION (ssh | podman), BENCH_MESSAGES (500), BENCH_REFERENCE_MESSAGES (60), LAB_IMAGE, LAB_NETWORK,
BENCH_KEEP=1 (leave the lab's sinks, relay and images for a look; `podman rm -f` them by hand).
Writes docs/performance.md and docs/bench-raw.json (all runs) and prints the tables.
Containers are named smarthost-bn-*, carry the project's label (LAB_LABEL=container) and are removed at the end,
also on failure or Ctrl-C (unless BENCH_KEEP=1; `make clean-lab` removes them then).
"""
import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SHARED = ROOT / "molecule" / "shared"
WORK = ROOT / ".tmp" / "bench"
RAW_JSON = ROOT / "docs" / "bench-raw.json"
REPORT_MD = ROOT / "docs" / "performance.md"
BIN = Path(sys.executable).parent

IMAGE = os.environ.get("LAB_IMAGE", "localhost/smarthost-debian12:latest")
NETWORK = os.environ.get("LAB_NETWORK", "smarthost-lab")
# The project's label: containers carry LABEL=container, images LABEL=image (see the Makefile).
LABEL = os.environ.get("LAB_LABEL", "smarthost.postfix")
# Every container of the bench is named PREFIX + its role (the project's names all start with smarthost-).
PREFIX = "smarthost-bn-"
PREINSTALLED_IMAGE = "localhost/smarthost-bench-preinstalled:latest"
# The lab image plus an SSH server: Ansible reaches the bench's hosts over SSH with pipelining, as it
# reaches a fleet. The podman connection plugin cannot pipeline and costs about 1 s a task here.
SSH_IMAGE = "localhost/smarthost-bench-ssh:latest"
SSH_KEY = WORK / "ssh" / "id_ed25519"
FIGURES = ("converge", "fleet", "failover", "throughput")

# Static addresses from the bench's range (10.89.77.100-140); the client address only feeds mynetworks.
# RELAY serves figures 3 and 4; REFERENCE_RELAY, converged the same way, runs figure 3's reference
# (Postfix's default timeout) at the same moment as RELAY runs the role's setting.
UPSTREAM_A, UPSTREAM_B, RELAY, REFERENCE_RELAY = (PREFIX + role for role in ("a", "b", "relay", "relay-ref"))
# PACKAGES times the bare package install; BASE is the container that the bench's images are committed from.
PACKAGES, BASE = PREFIX + "pkg", PREFIX + "base"
ADDRESSES = {UPSTREAM_A: "10.89.77.100", UPSTREAM_B: "10.89.77.101", RELAY: "10.89.77.102",
             PACKAGES: "10.89.77.103", REFERENCE_RELAY: "10.89.77.104", BASE: "10.89.77.105"}
FLEET, FLEET_FIRST_ADDRESS = PREFIX + "f", 111
# The fleet's relays of all sizes run at once, from .111: up to .138 (.140 is the allowed client).
FLEET_MAX = 28
ALLOWED_CLIENT = "10.89.77.140"

LAB = yaml.safe_load((SHARED / "vars" / "lab.yml").read_text(encoding="utf-8"))
MAILDIR = LAB["lab_maildir"]
RECIPIENT = LAB["lab_recipient"]
CA_BUNDLE = LAB["lab_ca_bundle"]
# Where the sink role keeps its CA certificate (sink_tls_dir's default).
SINK_CA = "/etc/sink/tls/ca.pem"
SENDER = "bench@example.com"

# The package install the role performs, done the way its apt task does it (noninteractive, debconf
# defaults), timed on its own as the reference for the first converge and used for the fleet image.
PACKAGE_INSTALL = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix libsasl2-modules >/dev/null"

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

# profile_tasks' summary lines: "role : Task name ------ 12.34s".
TASK_TIME = re.compile(r"^(.+?) -{2,} (\d+\.\d+)s$", re.M)
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", re.M)


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


def log(message):
    """Progress on stderr, so stdout carries only the result table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(cmd, stdin=None, timeout=900, check=True):
    """Run a command, return the CompletedProcess; raise BenchError with its output on failure."""
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise BenchError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def timed(func, *args, **kwargs):
    """Wall seconds of func(*args) and its result."""
    start = time.monotonic()
    result = func(*args, **kwargs)
    return round(time.monotonic() - start, 3), result


def median(values):
    """Median of the values that were measured (None means the run had no such figure)."""
    values = [value for value in values if value is not None]
    return round(statistics.median(values), 3) if values else None


def ratio(numerator, denominator):
    """numerator / denominator rounded, None when either is missing."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 2)


class Lab:
    """The bench's containers on the lab network; everything started here is removed by cleanup()."""

    def __init__(self, connection):
        self.connection = connection
        self.base = IMAGE
        self.started = []
        self.images = []
        # Container IDs by name: a name comes back with a new container, and an SSH master
        # connection kept for the old one must not be reused (see Ansible.inventory).
        self.ids = {}
        # The relays that run, converged with the lab's settings, for figures 3 and 4 (see ready_relays).
        self.ready = set()

    def start(self, names, image=None, caps=()):
        """Start fresh systemd containers side by side and wait until they finished booting."""
        def start_one(name):
            run(["podman", "rm", "-f", "-t", "0", name], check=False)
            # Names and addresses come back with new containers: a fixed MAC per address keeps the
            # host's ARP entry right (an entry for an old MAC made SSH time out), and one left over
            # from elsewhere is dropped.
            run(["ip", "neigh", "flush", "to", address(name)], check=False)
            cmd = ["podman", "run", "-d", "--name", name, "--hostname", name, "--network", NETWORK,
                   "--ip", address(name), "--mac-address", mac_address(name), "--label", f"{LABEL}=container"]
            cmd += [arg for cap in caps for arg in ("--cap-add", cap)]
            self.ids[name] = run(cmd + [image or self.base]).stdout.strip()[:12]
            self.started.append(name)
            # "degraded" is fine (some units do not start in a container); the boot is over either way.
            run(["podman", "exec", name, "systemctl", "is-system-running", "--wait"], check=False, timeout=120)
        in_parallel(start_one, names)

    def remove(self, names):
        """Remove containers now (they are not needed by later steps)."""
        if names:
            run(["podman", "rm", "-f", "-t", "0"] + list(names), check=False)
        self.started = [name for name in self.started if name not in names]

    def cleanup(self):
        """Remove every container and image this run created."""
        self.remove(list(self.started))
        for image in self.images:
            run(["podman", "rmi", "-f", image], check=False)

    @staticmethod
    def sh(name, script, stdin=None, timeout=900, check=True):
        """Run a shell script inside a container."""
        return run(["podman", "exec", "-i", name, "sh", "-c", script], stdin=stdin, timeout=timeout, check=check)

    @staticmethod
    def background(name, argv):
        """Start a long-running command inside a container; returns once it printed its first line."""
        proc = subprocess.Popen(["podman", "exec", "-i", name] + argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = proc.stdout.readline().strip()
        if first != "ready":
            raise BenchError(f"{name}: {shlex.join(argv)} did not start: {first} {proc.stderr.read()[-2000:]}")
        return proc

    def commit(self, name, image):
        """Stop a container and keep it as an image (removed again by cleanup())."""
        run(["podman", "stop", "-t", "5", name])
        run(["podman", "commit", "-q", "--change", f"LABEL {LABEL}=image", name, image])
        self.images.append(image)
        self.remove([name])

    def build_ssh_image(self):
        """The lab image with an SSH server that lets the bench's key in as root; every bench host starts from it."""
        SSH_KEY.parent.mkdir(parents=True, exist_ok=True)
        if not SSH_KEY.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "smarthost-bench", "-f", str(SSH_KEY)])
        self.start([BASE], image=IMAGE)
        # The package lists go again: the role's first converge must find the image as bare as the lab image.
        self.sh(BASE, "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends"
                      " openssh-server >/dev/null && rm -rf /var/lib/apt/lists/* && systemctl enable -q ssh"
                      " && install -d -m 0700 /root/.ssh && cat > /root/.ssh/authorized_keys"
                      " && chmod 0600 /root/.ssh/authorized_keys",
                stdin=SSH_KEY.with_suffix(".pub").read_text(encoding="utf-8"))
        self.commit(BASE, SSH_IMAGE)
        self.base = SSH_IMAGE

    def build_preinstalled_image(self):
        """An image with the role's packages installed as its apt task would, for fleets without the package install."""
        self.start([BASE])
        self.sh(BASE, PACKAGE_INSTALL)
        self.commit(BASE, PREINSTALLED_IMAGE)


def in_parallel(func, items):
    """func(item) for every item, side by side (set-up steps, never a measurement); the first error is raised."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(func, item) for item in items]:
            future.result()


def mac_address(name):
    """A locally administered MAC derived from the container's address."""
    return "02:00:" + ":".join(f"{int(octet):02x}" for octet in address(name).split("."))


def address(name):
    """The static address of a bench container."""
    if name in ADDRESSES:
        return ADDRESSES[name]
    number = int(name.removeprefix(FLEET))
    return f"10.89.77.{FLEET_FIRST_ADDRESS + number - 1}"


class Ansible:
    """ansible-playbook and ansible runs against inventories that reuse the molecule/shared playbooks."""

    def __init__(self, lab):
        self.lab = lab
        self.env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_STDOUT_CALLBACK="default",
                        ANSIBLE_PIPELINING="1", ANSIBLE_HOST_KEY_CHECKING="0",
                        ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_DEPRECATION_WARNINGS="0",
                        # Per-task times in the logs and the raw figures: where a converge spends its time.
                        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="6")
        self.env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(ROOT / ".tmp" / "collections"))
        self.logs = WORK / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def host(self, name):
        """Connection variables of one bench container."""
        if self.lab.connection == "podman":
            return {"ansible_connection": "containers.podman.podman"}
        return {"ansible_connection": "ansible.builtin.ssh", "ansible_host": address(name), "ansible_user": "root",
                "ansible_ssh_private_key_file": str(SSH_KEY),
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
                # One master connection per container, as Ansible keeps one per host (ControlPersist);
                # keyed by the container ID because the bench reuses names and addresses.
                "ansible_control_path_dir": str(WORK / "cp" / self.lab.ids.get(name, name))}

    def inventory(self, relays):
        """Write an inventory with the lab's groups; the sinks are always there for lab.yml's lookups."""
        data = {"all": {
            "vars": {"ansible_python_interpreter": "/usr/bin/python3", "lab_allowed_client": ALLOWED_CLIENT},
            "children": {
                "upstreams": {"children": {"upstream_a": {"hosts": {UPSTREAM_A: self.host(UPSTREAM_A)}},
                                           "upstream_b": {"hosts": {UPSTREAM_B: self.host(UPSTREAM_B)}}}},
                "relays": {"hosts": {name: self.host(name) for name in relays}}}}}
        path = WORK / f"inventory-{'-'.join(relays) or 'none'}.json"
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")
        return path

    def _run(self, cmd, label):
        """Run an Ansible command, keep its output under .tmp/bench/logs, fail with its tail."""
        seconds, proc = timed(subprocess.run, cmd, env=self.env, capture_output=True, text=True, check=False)
        (self.logs / f"{label}.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
        if proc.returncode != 0:
            raise BenchError(f"{label} failed ({proc.returncode}), see {self.logs}/{label}.log:\n{proc.stdout[-4000:]}")
        return seconds, proc.stdout

    def playbook(self, playbook, relays, label, forks=5, extra_vars=None):
        """Wall seconds and the play recap (tasks that ran, changed, skipped) summed over the relays."""
        cmd = [str(BIN / "ansible-playbook"), "-i", str(self.inventory(relays)), "-f", str(forks), str(playbook)]
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        seconds, out = self._run(cmd, label)
        recap = {m.group(1): [int(x) for x in m.groups()[1:]] for m in RECAP.finditer(out)}
        hosts = [recap[name] for name in relays if name in recap]
        # The recap's ok= counts every task that ran on the host, changed ones included.
        return {"seconds": seconds, "hosts": len(hosts), "tasks": sum(h[0] for h in hosts),
                "changed": sum(h[1] for h in hosts), "skipped": sum(h[4] for h in hosts),
                "slowest_tasks": {name.strip(): float(sec) for name, sec in TASK_TIME.findall(out)}}

    def ping(self, host, label):
        """Wall seconds of `ansible -m ping`: the floor any play against this host pays."""
        cmd = [str(BIN / "ansible"), "-i", str(self.inventory([host])), host, "-m", "ansible.builtin.ping"]
        return self._run(cmd, label)[0]


def install_ca(lab, names, bundle):
    """What prepare.yml's second play does for the relays: trust the sinks' CAs."""
    in_parallel(lambda name: lab.sh(name, f"cat > {CA_BUNDLE} && chmod 0644 {CA_BUNDLE}", stdin=bundle), names)


def set_postfix(name, parameter, value):
    """Change one main.cf parameter on a running relay and reload Postfix."""
    Lab.sh(name, f"postconf -e {shlex.quote(parameter + '=' + value)} && postfix reload 2>/dev/null")


def wait_queue_empty(name, timeout=180):
    """Wait until the relay's queue is empty, so one measurement does not carry into the next."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Lab.sh(name, "postqueue -j").stdout.strip():
            return
        time.sleep(0.5)
    raise BenchError(f"{name}: queue not empty after {timeout} s: {Lab.sh(name, 'postqueue -p').stdout[-2000:]}")


def waiter(sink, mode, wanted, timeout):
    """Start lab_wait.py in a sink; returns the process (already past its starting snapshot)."""
    return Lab.background(sink, ["python3", "/usr/local/bin/bn-lab-wait", mode, MAILDIR, str(wanted), str(timeout)])


def waiter_result(proc, what):
    """Arrival time reported by lab_wait.py; BenchError if nothing arrived in time."""
    out, err = proc.communicate(timeout=900)
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"arrival": None}
    if result["arrival"] is None:
        raise BenchError(f"{what}: did not arrive in time ({result}, {err[-1000:]})")
    return result["arrival"]


# ---- figure 1: converge -----------------------------------------------------------------------

def figure_converge(lab, ansible, runs, bundle):
    """First converge of a fresh relay and its no-op rerun, next to the package install and ping floor.

    The fresh relays of the last two runs stay, converged: RELAY for figures 3 and 4, REFERENCE_RELAY
    for figure 3's reference (two converges less in the bench).
    """
    results = []
    for number in range(1, runs + 1):
        # The last two runs' relays stay for figures 3 and 4.
        keep = number >= runs - 1
        relay = REFERENCE_RELAY if number == runs - 1 else RELAY
        log(f"converge run {number}/{runs}: fresh relay ({relay}) and a fresh package-install reference")
        lab.ready.discard(relay)
        lab.start([PACKAGES, relay])
        install_ca(lab, [relay], bundle)
        packages = timed(lab.sh, PACKAGES, PACKAGE_INSTALL)[0]
        first = ansible.playbook(SHARED / "converge.yml", [relay], f"converge-{number}-first")
        ping = ansible.ping(relay, f"converge-{number}-ping")
        noop = ansible.playbook(SHARED / "converge.yml", [relay], f"converge-{number}-noop")
        lab.remove([PACKAGES] if keep else [PACKAGES, relay])
        if keep:
            lab.ready.add(relay)
        results.append({"run": number, "ping_seconds": ping, "package_install_seconds": packages, "first": first, "noop": noop,
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


# ---- figure 2: fleet --------------------------------------------------------------------------

def figure_fleet(lab, ansible, runs, sizes, bundle, image, keep=False):
    """N relays converged in one play with forks = N: first converge and no-op rerun.

    Each run starts the relays of every size at once (booting them is not measured), converges one size
    after the other, each on its own relays, and removes them all at the end of the run: a converged relay
    is idle, and removing containers can make the lab's DNS miss look-ups (the next converge's preflight)
    for a moment. With keep, the last run's relays stay for figure 3.
    """
    results = []
    offsets = [sum(sizes[:index]) for index in range(len(sizes))]
    everyone = [f"{FLEET}{index}" for index in range(1, sum(sizes) + 1)]
    for number in range(1, runs + 1):
        log(f"fleet run {number}/{runs}: starting {len(everyone)} relays for sizes {', '.join(map(str, sizes))}")
        lab.ready.difference_update(everyone)
        lab.start(everyone, image=image)
        install_ca(lab, everyone, bundle)
        for size, offset in zip(sizes, offsets):
            names = everyone[offset:offset + size]
            first = ansible.playbook(SHARED / "converge.yml", names, f"fleet-{number}-{size}-first", forks=size)
            noop = ansible.playbook(SHARED / "converge.yml", names, f"fleet-{number}-{size}-noop", forks=size)
            results.append({"run": number, "relays": size, "first": first, "noop": noop})
            log(f"  {size} relay(s): first {first['seconds']} s, no-op {noop['seconds']} s")
        if keep and number == runs:
            lab.ready.update(everyone)
        else:
            lab.remove(everyone)
    medians = {}
    for size in sizes:
        mine = [r for r in results if r["relays"] == size]
        medians[str(size)] = {"first_seconds": median([r["first"]["seconds"] for r in mine]),
                              "noop_seconds": median([r["noop"]["seconds"] for r in mine]),
                              "noop_changed": median([r["noop"]["changed"] for r in mine])}
    return {"packages": "preinstalled" if image == PREINSTALLED_IMAGE else "fresh", "runs": results, "median": medians}


# ---- figure 3: failover -----------------------------------------------------------------------

def break_upstream_a(case):
    """A refuses connections (Postfix stopped) or silently drops SMTP packets (nft)."""
    if case == "refused":
        Lab.sh(UPSTREAM_A, "systemctl stop postfix")
    else:
        Lab.sh(UPSTREAM_A, "nft add table inet bn && nft add chain inet bn input '{ type filter hook input priority 0; }'"
                           " && nft add rule inet bn input tcp dport '{ 587, 465 }' drop")


def repair_upstream_a(case):
    """Undo break_upstream_a."""
    if case == "refused":
        Lab.sh(UPSTREAM_A, "systemctl start postfix")
    else:
        Lab.sh(UPSTREAM_A, "nft delete table inet bn", check=False)


def warm_up(relay=RELAY):
    """Relay one message first, so the first measurement does not pay for cold caches and processes.

    Done when the relay's queue is empty, wherever the message went: right after the bench starts or
    removes containers, the lab's DNS can miss a look-up of A (5 s), and the relay then rightly
    delivers through B.
    """
    Lab.sh(relay, "/usr/sbin/sendmail -i -t", stdin=f"From: root\nTo: {RECIPIENT}\nSubject: bn-warm-up-{uuid.uuid4().hex[:12]}\n\nWarm-up.\n")
    wait_queue_empty(relay)


def failover_once(case, markers):
    """Seconds from sendmail to arrival in B's Maildir while A is broken, per relay ({relay: marker}), sent at once."""
    relays = list(markers)
    in_parallel(wait_queue_empty, relays)
    # A connection to B cached in the previous case would make this one faster: a reload ends the
    # idle SMTP clients and the connection cache (quicker than waiting out their 2 s time limit).
    in_parallel(lambda relay: Lab.sh(relay, "postfix reload 2>/dev/null && sleep 0.5"), relays)
    procs = {relay: waiter(UPSTREAM_B, "marker", marker, 180) for relay, marker in markers.items()}
    break_upstream_a(case)
    submitted = {}
    try:
        def submit(relay):
            message = f"From: root\nTo: {RECIPIENT}\nSubject: {markers[relay]}\n\nFailover benchmark.\n"
            submitted[relay] = float(Lab.sh(relay, "date +%s.%N && /usr/sbin/sendmail -i -t", stdin=message).stdout.split()[0])
        in_parallel(submit, relays)
        results = {}
        for relay in relays:
            try:
                results[relay] = round(waiter_result(procs[relay], f"failover message {markers[relay]} at B") - submitted[relay], 3)
            except BenchError as error:
                # One lost message should not cost the whole bench: keep the reason, drop the figure.
                results[relay] = {"error": str(error)[:300], "relay_log": relay_log(relay, markers[relay])}
                Lab.sh(relay, "postsuper -d ALL >/dev/null 2>&1", check=False)
    finally:
        for proc in procs.values():
            proc.kill()
        repair_upstream_a(case)
    return results


def relay_log(relay, marker):
    """The relay's Postfix log lines and queue for a message that did not arrive, for the raw figures."""
    script = (f"id=$(journalctl -q -o cat --since -10min | grep -F {shlex.quote(marker)} | grep -o '^[0-9A-F]*' | head -1);"
              " journalctl -q -o cat --since -10min | grep -E \"${id:-none}|warning|fatal\" | tail -20; postqueue -p | tail -5")
    return Lab.sh(relay, script, check=False).stdout.splitlines()


def figure_failover(relays):
    """Failover to B with the role's connect timeout and with Postfix's default, all runs at the same moment.

    relays: 2 x runs converged relays. The even ones keep the role's smtp_connect_timeout, the odd ones get
    Postfix's default; each pair is one run. Every case (A refusing, A dropping packets) is measured once,
    on all of them at once: the figure is bound by the timeouts, not by the machine, and the three runs of
    the 30 s reference would otherwise take 1.5 minutes.
    """
    role_timeout = Lab.sh(relays[0], "postconf -h smtp_connect_timeout").stdout.strip()
    default_timeout = Lab.sh(relays[0], "postconf -dh smtp_connect_timeout").stdout.strip()
    settings = {"role": role_timeout, "postfix_default": default_timeout}
    by_setting = {"role": relays[0::2], "postfix_default": relays[1::2]}
    in_parallel(lambda relay: set_postfix(relay, "smtp_connect_timeout", default_timeout), by_setting["postfix_default"])
    in_parallel(warm_up, relays)
    # Not measured: the first delivery to B of a run sometimes took 5 or 10 s more than the others (the
    # relay's log then shows no failed connection, only a slow connection set-up: look-ups that the lab's
    # DNS missed right after the bench started or removed containers), which is not what the figure is about.
    warm_ups = failover_once("refused", {relay: f"bn-warm-up-b-{uuid.uuid4().hex[:12]}" for relay in relays})
    log(f"failover warm-up through B: {warm_ups} s (not counted)")
    results = []
    for case in ("refused", "dropped"):
        measured = failover_once(case, {relay: f"bn-failover-{case}-{uuid.uuid4().hex[:12]}" for relay in relays})
        for setting, mine in by_setting.items():
            for number, relay in enumerate(mine, start=1):
                entry = {"run": number, "setting": setting, "relay": relay, "smtp_connect_timeout": settings[setting], "case": case}
                if isinstance(measured[relay], dict):
                    entry.update(seconds=None, **measured[relay])
                else:
                    entry["seconds"] = measured[relay]
                results.append(entry)
                log(f"failover run {number}/{len(mine)}: {setting} ({settings[setting]}) on {relay}, A {case}: {entry['seconds']} s")
    # Figure 4 measures relays[0] with the role's settings; the others stay idle until the end.
    medians = {f"{s}_{c}": median([r["seconds"] for r in results if r["setting"] == s and r["case"] == c])
               for s in settings for c in ("refused", "dropped")}
    warm_up_seconds = [seconds for seconds in warm_ups.values() if isinstance(seconds, float)]
    return {"settings": settings, "warm_up_through_b_seconds": max(warm_up_seconds) if warm_up_seconds else None,
            "runs": results, "median": medians}


# ---- figures 4 and 5: throughput and memory ---------------------------------------------------

def sessions_at_a():
    """Number of SMTP sessions upstream A's submission service (587) has logged so far."""
    found = Lab.sh(UPSTREAM_A, r"grep -c 'postfix/submission/smtpd\[[0-9]*\]: connect from' /var/log/postfix.log || true")
    return int(found.stdout.strip() or 0)


def throughput_once(variant, messages, password):
    """Seconds until `messages` small messages are in A's Maildir, A's SMTP sessions, and the relay's peak memory."""
    wait_queue_empty(RELAY)
    if variant != "direct":
        set_postfix(RELAY, "smtp_tls_connection_reuse", "yes" if variant == "relay_reuse_on" else "no")
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


def figure_throughput(lab, runs, messages, reference_messages):
    """Relay throughput with TLS connection reuse off and on, and one TLS+AUTH session per message direct to A.

    The two one-session-per-message paths (direct, relay without reuse) cost the same per message whatever
    the count, so they may send fewer messages (reference_messages) to keep the bench short; msg/s compare.
    """
    del lab
    counts = {"direct": reference_messages, "relay_reuse_off": reference_messages, "relay_reuse_on": messages}
    password = LAB["lab_accounts"]["upstream_a"]["password"]
    original = Lab.sh(RELAY, "postconf -h smtp_tls_connection_reuse").stdout.strip()
    variants = ["direct", "relay_reuse_off", "relay_reuse_on"]
    results = []
    warm_up()
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
        set_postfix(RELAY, "smtp_tls_connection_reuse", original)
    medians = {}
    for variant in variants:
        mine = [r for r in results if r["variant"] == variant]
        medians[variant] = {key: median([r[key] for r in mine])
                            for key in ("seconds", "messages_per_second", "sessions_at_a", "idle_rss_kib", "idle_anon_kib",
                                        "peak_rss_kib", "peak_anon_kib")}
    by_run = {(r["run"], r["variant"]): r for r in results}
    for variant in ("relay_reuse_off", "relay_reuse_on"):
        medians[variant]["vs_direct"] = median([ratio(by_run[(n, variant)]["messages_per_second"],
                                                      by_run[(n, "direct")]["messages_per_second"]) for n in range(1, runs + 1)])
    medians["relay_reuse_on"]["vs_reuse_off"] = median([
        ratio(by_run[(n, "relay_reuse_on")]["messages_per_second"], by_run[(n, "relay_reuse_off")]["messages_per_second"])
        for n in range(1, runs + 1)])
    return {"messages": counts, "runs": results, "median": medians}


# ---- the lab ----------------------------------------------------------------------------------

def set_up_lab(lab, figures, fleet_image):
    """Sinks A and B (and, for the fleet, the image with the packages); returns the CA bundle for the relays."""
    if lab.connection == "ssh":
        log(f"building {SSH_IMAGE} (the lab image with an SSH server)")
        lab.build_ssh_image()
    log("starting upstream A and fallback B")
    lab.start([UPSTREAM_A, UPSTREAM_B], caps=["NET_ADMIN"])
    builder = None
    errors = []
    if "fleet" in figures and fleet_image == PREINSTALLED_IMAGE:
        # Not measured: built while the sinks are prepared.
        def build():
            try:
                lab.build_preinstalled_image()
            except BenchError as error:
                errors.append(error)
        builder = threading.Thread(target=build)
        builder.start()
    log("preparing the sinks (molecule/shared/prepare.yml)")
    ansible = Ansible(lab)
    ansible.playbook(SHARED / "prepare.yml", [], "prepare")
    for sink in (UPSTREAM_A, UPSTREAM_B):
        run(["podman", "cp", str(BENCH / "lab_wait.py"), f"{sink}:/usr/local/bin/bn-lab-wait"])
    if builder:
        builder.join()
    if errors:
        raise errors[0]
    # The bundle prepare.yml installs on relays: each sink's CA (the sink role's sink_ca_pem), one after the other.
    return "\n".join(Lab.sh(sink, f"cat {SINK_CA}").stdout for sink in (UPSTREAM_A, UPSTREAM_B)) + "\n"


def ready_relays(lab, ansible, bundle, count):
    """count converged relays for figures 3 and 4, RELAY first: those the earlier figures left, and new
    ones converged side by side for the rest."""
    candidates = [RELAY, REFERENCE_RELAY] + [f"{FLEET}{index}" for index in range(1, FLEET_MAX + 1)]
    chosen = [RELAY] + [name for name in candidates[1:] if name in lab.ready][:count - 1]
    chosen += [name for name in candidates[1:] if name not in chosen and name not in lab.started][:count - len(chosen)]
    missing = [relay for relay in chosen if relay not in lab.ready]
    if missing:
        log(f"starting and converging {', '.join(missing)} (molecule/shared/converge.yml)")
        lab.start(missing)
        install_ca(lab, missing, bundle)
        ansible.playbook(SHARED / "converge.yml", missing, "converge-" + "-".join(missing), forks=len(missing))
        lab.ready.update(missing)
    run(["podman", "cp", str(BENCH / "direct_send.py"), f"{RELAY}:/usr/local/bin/bn-direct-send"])
    return chosen


CONNECTIONS = {"ssh": "Ansible over SSH with pipelining (lab image plus openssh-server)",
               "podman": "Ansible over the containers.podman.podman connection (no pipelining)"}


def machine(connection):
    """Where the figures were measured."""
    meminfo = Path("/proc/meminfo").read_text(encoding="utf-8")
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpus": os.cpu_count(), "cpu_model": model.group(1) if model else platform.machine(),
            "memory_gib": round(int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1)) / 1024 / 1024, 1),
            "kernel": platform.release(),
            "podman": run(["podman", "--version"]).stdout.strip().removeprefix("podman version "),
            "ansible_core": run([str(BIN / "ansible"), "--version"]).stdout.splitlines()[0],
            "lab_image": IMAGE, "connection": CONNECTIONS[connection]}


# ---- report -----------------------------------------------------------------------------------

def fmt(value, unit="", digits=1):
    """A number for the tables; '-' when not measured."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}{unit}"


def each(values, digits=1):
    """The individual runs, for the reader who wants to see the spread."""
    return ", ".join(fmt(value, digits=digits) for value in values)


def verdict(ok):
    """Target met or not."""
    if ok is None:
        return "not measured"
    return "met" if ok else "**missed**"


def render_converge(fig):
    """Table of figure 1."""
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
    # Where the first converge spends its time (ansible.posix.profile_tasks), median over the runs.
    names = {name for r in runs for name in r["first"].get("slowest_tasks", {})}
    slowest = sorted(((median([r["first"].get("slowest_tasks", {}).get(name) for r in runs]), name) for name in names), reverse=True)
    if slowest:
        lines += ["", "Slowest tasks of the first converge (median seconds):", "", "| task | seconds |", "|---|---:|"]
        lines += [f"| {name} | {fmt(sec)} |" for sec, name in slowest[:6]]
    return lines


def render_fleet(fig):
    """Table of figure 2."""
    lines = ["| relays (forks) | first converge | per relay | no-op rerun | per relay | no-op changed | first runs | no-op runs |",
             "|---:|---:|---:|---:|---:|---:|---|---|"]
    for size, med in fig["median"].items():
        mine = [r for r in fig["runs"] if str(r["relays"]) == size]
        count = int(size)
        lines.append(f"| {size} | {fmt(med['first_seconds'], ' s')} | {fmt(med['first_seconds'] / count, ' s')} | "
                     f"{fmt(med['noop_seconds'], ' s')} | {fmt(med['noop_seconds'] / count, ' s')} | {med['noop_changed']:.0f} | "
                     f"{each([r['first']['seconds'] for r in mine])} | {each([r['noop']['seconds'] for r in mine])} |")
    return lines


def render_failover(fig):
    """Table of figure 3."""
    settings, med = fig["settings"], fig["median"]
    lines = [f"| upstream A | role (smtp_connect_timeout {settings['role']}) | Postfix default ({settings['postfix_default']}) |"
             " role runs | default runs |", "|---|---:|---:|---|---|"]
    for case, label in (("refused", "refuses connections"), ("dropped", "drops packets")):
        role_runs = [r["seconds"] for r in fig["runs"] if r["setting"] == "role" and r["case"] == case]
        default_runs = [r["seconds"] for r in fig["runs"] if r["setting"] == "postfix_default" and r["case"] == case]
        lines.append(f"| {label} | {fmt(med['role_' + case], ' s')} | {fmt(med['postfix_default_' + case], ' s')} | "
                     f"{each(role_runs)} | {each(default_runs)} |")
    return lines


def render_throughput(fig):
    """Tables of figures 4 and 5."""
    med = fig["median"]
    labels = {"direct": "straight to A, one STARTTLS+AUTH session per message",
              "relay_reuse_off": "through the relay, TLS connection reuse off",
              "relay_reuse_on": "through the relay, TLS connection reuse on (role default)"}
    lines = ["| variant | messages | msg/s | seconds | SMTP sessions at A | vs direct | runs (msg/s) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for variant, label in labels.items():
        mine = [r["messages_per_second"] for r in fig["runs"] if r["variant"] == variant]
        lines.append(f"| {label} | {fig['messages'][variant]} | {fmt(med[variant]['messages_per_second'])} | {fmt(med[variant]['seconds'])} | "
                     f"{fmt(med[variant]['sessions_at_a'], digits=0)} | {fmt(med[variant].get('vs_direct'), 'x', 2)} | {each(mine)} |")
    lines += ["", "Peak memory of the relay's Postfix processes (master and its children, summed, sampled every 0.5 s):", "",
              "| relay run | idle RSS | peak RSS | idle RssAnon | peak RssAnon | runs (peak RSS) |", "|---|---:|---:|---:|---:|---|"]
    for variant in ("relay_reuse_off", "relay_reuse_on"):
        mine = [r["peak_rss_kib"] / 1024 for r in fig["runs"] if r["variant"] == variant]
        values = [fmt(med[variant][key] / 1024, " MiB") for key in ("idle_rss_kib", "peak_rss_kib", "idle_anon_kib", "peak_anon_kib")]
        lines.append(f"| {labels[variant]} | {' | '.join(values)} | {each(mine)} |")
    return lines


def targets(data):
    """The issue's targets next to what was measured."""
    figs = data["figures"]
    conv, fail, thr = figs.get("converge"), figs.get("failover"), figs.get("throughput")
    rows = []
    noop = conv["median"]["noop_to_ping"] if conv else None
    rows.append(("no-op rerun at most 3x the `ansible -m ping` floor", fmt(noop, "x", 2), verdict(noop <= 3 if conv else None)))
    extra = conv["median"]["first_minus_packages_seconds"] if conv else None
    rows.append(("first converge no slower than the package install plus a few (<= 10) seconds",
                 f"+{fmt(extra, ' s')}" if conv else "-", verdict(extra <= 10 if conv else None)))
    dropped = fail["median"]["role_dropped"] if fail else None
    rows.append(("failover to B at most 6 s when A drops packets", fmt(dropped, " s"), verdict(dropped <= 6 if fail else None)))
    gain = thr["median"]["relay_reuse_on"]["vs_direct"] if thr else None
    rows.append(("relay throughput well above (>= 2x) one TLS+AUTH session per message", fmt(gain, "x", 2),
                 verdict(gain >= 2 if thr else None)))
    lines = ["| target | measured (median) | |", "|---|---:|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return lines


HISTORY = """\
## Before and after (what the figures led to)

| change | figure | before | after |
|---|---|---:|---:|
| SSH with pipelining instead of the podman connection (bench only) | per task, 10 `command` tasks | 1.2 s | 0.2 s |
| | full `make bench` | 38 min | see the top |
| `apt-get` instead of the apt module, which first installed python3-apt | install task vs the bare install | +6.5 s | +0.6 s |
| live state: no `postmap -s` on a missing map (a Postfix fatal sleeps 1 s) | "Read the live state again after the installation" | 3.8 s | 0.8 s |
| staging main.cf dated back (Postfix rereads a main.cf younger than 2 s) | "Write main.cf once Postfix accepted a staging copy of it" | 4.7 s | 2.8 s |
| configuration tasks in one include that a no-op skips; live state parsed once | no-op rerun: tasks evaluated / ratio to ping | 20 / 3.39x | 9 / see the top |
| all of the above | first converge minus package install | +27.6 s | see the top |
| sink: Dovecot stop bounded to 5 s; containers start side by side; figure 1's relay reused | lab set-up | 4.1 min | 1.7-1.8 min |
| main.cf rendered once per run, not again for each condition that compares it | the include "Bring the relay configuration ..." | 1.4 s | 0.3 s |
| `postfix reload` after dating a fresh main.cf back 2 s; no fact gathering for the service | the reload handler | 2.6-4.0 s | 0.6-0.7 s |
| preflight fingerprint written by one command, not copy's stat, upload and module | "Remember the upstream settings ..." | 1.1-1.2 s | 0.5-0.6 s |
| the three changes above | fleet of 1, first converge (packages preinstalled) | 16.6 s | see figure 2 |
| | first converge minus package install | +17.5 s | see the top |
| sink: `apt-get` instead of the apt module (which installed python3-apt and refreshed the lists itself) | the sink's package tasks | 61 s | 40 s |
| figure 3: reference relay at the same moment, all runs at once (2 x runs relays) | figure 3's share of the bench | 3.1 min | see the top |
| figure 2: relays of all sizes boot at once, removed once per run | figure 2's share of the bench | 7.8 min | see the top |
| the three maps in one postmap module run (its new `tables` option) | the map tasks of a first converge | 2.0 s (three tasks) | 1.2 s |
| every upstream probed at once in one smtp_probe run (its new `upstreams` option) | the preflight probe | 1.6 s | 1.1 s |
| main.cf staging check without `postfix check` (a check of queue and file permissions) | "Write main.cf once Postfix accepted ..." | 2.5 s | 1.8 s |
| live state read again in the install command, not by a task of its own | "Read the live state again after the installation" | 0.7 s | none |
| the four changes above | fleet first converge, N = 1 / 4 / 8 (packages preinstalled) | 15.1 / 24.4 / 52.0 s | 11.8 / 22.4 / 40.5 s |
| | first converge minus package install | +13.4 s | +13.2 s |
| maps, tlsproxy, main.cf and the reload in one run of the new `postfix_config` module | those four tasks | 4.5 s (1.2+0.9+1.8+0.6) | 1.5 s |
| | fleet first converge, N = 1 / 4 / 8 (packages preinstalled) | 11.8 / 22.4 / 40.5 s | 7.5 / 13.8 / 26.5 s |
| | first converge minus package install (tasks run / changed) | +13.2 s (18 / 6) | +9.3 s (15 / 3) |

"Before" figures over SSH are from one run on this machine (2026-11-30 06:00 UTC) before the role
changes of that morning; the 38 min and 4.1 min are from the first bench (podman connection). The rows
from "main.cf rendered once" down compare the 07:28 UTC run with the runs after 09:00 UTC the same day
(per-task seconds from the profile_tasks output in `.tmp/bench/logs`). The last six rows compare the
10:42 UTC and 12:37 UTC runs of 2026-11-30, both from a clean clone (the three map tasks' 2.0 s and
the re-read's 0.7 s are from a first converge at 11:55 UTC on the same lab, whose profile lists every task).
Their per-task savings add up to about 2.5 s, and the fleet shows them, but the first converge over the
package install moved only from +13.4 to +13.2 s: in the 12:37 run the role's install task took 0.7 s
more than the bare install reference, in the 10:42 run 0.3 s less (the same `apt-get` against Debian's
mirror, plus the live-state read). The last three rows compare the 12:37 UTC run with the 14:51 UTC
run of 2026-11-30, both from a clean clone. The lab set-up depends on Debian's
mirror: in a run where it is slow the sinks' package download alone can take minutes (146 s instead of
about 33 s in the 07:28 run). The first bench also measured the first converge at +65.9 s over the package
install and the no-op at 1.92x the ping floor, both over the podman connection, where every task costs
about 1 s more.

What is left of the first converge over the package install, per task on one relay (14:51 run): the
first live-state read 1.5 s (it also opens the SSH connection), the postfix_config run 1.5 s (maps,
master.cf, main.cf with Postfix's staging check, and the reload), the probe 1.1 s, the preflight
fingerprint 0.6 s, rendering main.cf 0.4 s, about 1.5 s of tasks that run on the controller only or
are skipped (0.05-0.3 s each), the install task's own time over the bare install (0.9 s in this run),
and Ansible's start-up (about 1.5 s). Every module run costs about 0.3 s of CPU on the host (Python and
Ansible's module wrapper) and about as much on the controller.

In the 12:37 run one converge run in three (and one fleet run) had a probe of 11 s instead of 1.1 s.
The lab's DNS (aardvark, podman 4.3) stops answering for seconds while containers are started or removed. In a test
that started and removed a container next to loops of look-ups and connections from a relay, a look-up
took 5-10 s (one failed outright), and the sink's greeting, which waits for its own look-up of the
client, came 5 s late. The medians of 3 leave such a run out; the role's probe is not the cause.
"""

METHOD = """\
## How it is measured

- `make bench` runs `bench/run.py`: it starts its own containers (`smarthost-bn-*`, static addresses
  10.89.77.100-140 on the `smarthost-lab` network) from the lab image plus an SSH server (an image the
  bench builds and removes again): Ansible reaches them over SSH with pipelining, as it reaches a fleet.
  (`BENCH_CONNECTION=podman` uses the podman connection plugin instead, which cannot pipeline and costs
  about 1 s a task here: the figures of the first bench, before this, were taken that way.)
  It prepares upstream A and fallback B
  with `molecule/shared/prepare.yml` (the `sink` role: STARTTLS on 587, AUTH required, self-signed CA) and
  converges relays with `molecule/shared/converge.yml` (the `relay` role with the lab's upstreams).
- Each figure is the median of `BENCH_RUNS` runs (default 3); every comparison (floor, reference,
  variant) is measured inside the same run, one after the other, and ratios are taken per run.
  The machine is shared and noisy: compare the ratios, not the absolute seconds.
- Figure 1: each run starts two fresh containers: one gets the relay's first converge (package install
  included), then `ansible -m ping`, then the no-op rerun; the other times the bare package install
  (`apt-get update` and `apt-get install postfix libsasl2-modules`, noninteractive with debconf's defaults,
  as the role's install task runs them). The relays of the last two runs stay and serve figures 3 and 4.
- Figure 2: N fresh relays converged in one play with `forks = N`. With `BENCH_FLEET_PACKAGES=preinstalled`
  (the default, to keep `make bench` short on 2 cores) they start from an image with the packages
  installed the same way (committed from a container, not timed): the figure shows the role's own cost,
  figure 1 the package install. `BENCH_FLEET_PACKAGES=fresh` starts them from the bare lab image.
  Each run boots the relays of all sizes at once (not timed), converges one size after the other, each on
  its own fresh relays (the others idle), and removes them all at the end of the run.
- Figure 3: 2 x `BENCH_RUNS` converged relays (those figures 1 and 2 left): half keep the role's
  `smtp_connect_timeout`, the other half, the reference, get Postfix's default (`postconf -e` and a
  reload); a pair is one run. While A is broken (Postfix stopped: connection refused; or an nft rule on A
  dropping tcp/587: packets dropped) `sendmail` submits a marked message on all of them at the same
  moment: the figure is bound by timeouts, not by the machine (B then takes six deliveries at once, which
  puts the A-refuses case at 0.5-0.9 s instead of the 0.2 s of one relay at a time; the packets-dropped
  case is the timeout plus that). Each relay's figure is the time from its
  submission to the file's modification time in B's Maildir (one host clock). Each case starts after a
  reload of every relay's Postfix, so no connection to B cached by the previous case carries over. One
  message (wherever it goes) and one through B (A refusing) go first on each relay, not counted: the
  first delivery to B of a bench sometimes took 5 or 10 s more (name look-ups the lab's DNS missed right
  after containers were started or removed).
- Figure 4: `BENCH_MESSAGES` (500) small messages injected into the relay with Postfix's `smtp-source -s 5`
  (on the relay itself), timed until all are in A's Maildir, with the role's `smtp_tls_connection_reuse`
  on. Side by side in the same run: the relay with reuse off (`postconf -e` and a reload), and messages
  sent from the relay container straight to A, each in its own SMTP session with STARTTLS and AUTH
  (Python smtplib, one after the other). These two paths open one session per message, so their rate does
  not depend on the count: they send `BENCH_REFERENCE_MESSAGES` (60) to keep the bench short.
  "SMTP sessions at A" counts the connections A's submission service logged; each costs a TCP and TLS
  handshake and an AUTH.
- Figure 5: Postfix's master and its children on the relay, from `/proc/PID/status`, summed and sampled
  every 0.5 s during the throughput runs. RSS counts shared pages (libraries) once per process and so
  overstates what the processes use together; RssAnon is the memory each process has of its own.
"""


def render(data):
    """The markdown report: machine, command, tables, targets, method."""
    mach = data["machine"]
    figs = data["figures"]
    out = ["# Performance", "",
           "Generated by `make bench` (`bench/run.py`); raw figures in [bench-raw.json](bench-raw.json).", "",
           f"Measured {mach['date']} on {mach['cpus']} CPUs ({mach['cpu_model']}), {mach['memory_gib']} GiB RAM, "
           f"kernel {mach['kernel']}, podman {mach['podman']}, {mach['ansible_core']}, image {mach['lab_image']}; "
           f"{mach.get('connection', CONNECTIONS['podman'])}; "
           f"{data['settings']['runs']} runs per figure.", "",
           "Bench time on this machine: lab set-up " + fmt(data.get("setup_seconds", 0) / 60, " min") + ", "
           + ", ".join(f"{key} {fmt(fig.get('bench_seconds', 0) / 60, ' min')}" for key, fig in figs.items()) + ".", "",
           "Reproduce: `make bench` (all figures) or `.venv/bin/python bench/run.py converge|fleet|failover|throughput` "
           "after `make setup` with the Makefile's environment.", "",
           "## Targets", ""] + targets(data)
    sections = (("converge", "1. Converge: one fresh Debian 12 relay", render_converge),
                ("fleet", "2. Fleet: N relays in one play", render_fleet),
                ("failover", "3. Failover latency: submission on the relay to arrival at fallback B", render_failover),
                ("throughput", "4. Relay throughput and 5. peak memory", render_throughput))
    for key, title, func in sections:
        out += ["", f"## {title}", ""]
        if key in figs:
            if figs[key].get("date") and figs[key]["date"] != mach["date"]:
                out += [f"Measured {figs[key]['date']}.", ""]
            if key == "fleet":
                out += [f"Packages: {figs[key]['packages']} (see below).", ""]
            out += func(figs[key])
        else:
            out.append("Not measured yet: run `bench/run.py " + key + "`.")
    return "\n".join(out + ["", HISTORY, METHOD])


def write_report(data):
    """docs/bench-raw.json, docs/performance.md, and the tables on stdout."""
    RAW_JSON.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    text = render(data)
    REPORT_MD.write_text(text, encoding="utf-8")
    print(text.split("## How it is measured", maxsplit=1)[0].rstrip())


def settings_from_env():
    """BENCH_* settings, checked."""
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    sizes = [int(size) for size in os.environ.get("BENCH_FLEET", "1 4 8").split()]
    packages = os.environ.get("BENCH_FLEET_PACKAGES", "preinstalled")
    connection = os.environ.get("BENCH_CONNECTION", "ssh")
    messages = int(os.environ.get("BENCH_MESSAGES", "500"))
    reference = int(os.environ.get("BENCH_REFERENCE_MESSAGES", "60"))
    bad = (runs < 1 or not sizes or min(sizes) < 1 or sum(sizes) > FLEET_MAX or packages not in ("preinstalled", "fresh")
           or connection not in ("ssh", "podman") or min(messages, reference) < 1)
    if bad:
        raise SystemExit(f"bad settings: BENCH_RUNS={runs} BENCH_FLEET={sizes} (at most {FLEET_MAX} relays in all) "
                         f"BENCH_FLEET_PACKAGES={packages} BENCH_CONNECTION={connection} "
                         f"BENCH_MESSAGES={messages} BENCH_REFERENCE_MESSAGES={reference}")
    return {"runs": runs, "fleet": sizes, "fleet_packages": packages, "connection": connection, "messages": messages, "reference_messages": reference}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figures", nargs="*", help=f"figures to measure: {', '.join(FIGURES)} (default: all)")
    parser.add_argument("--render", action="store_true", help="only rewrite docs/performance.md from docs/bench-raw.json")
    args = parser.parse_args()
    if args.render:
        write_report(json.loads(RAW_JSON.read_text(encoding="utf-8")))
        return 0
    figures = args.figures or list(FIGURES)
    if set(figures) - set(FIGURES):
        parser.error(f"unknown figure(s) {', '.join(sorted(set(figures) - set(FIGURES)))}; choose from {', '.join(FIGURES)}")
    settings = settings_from_env()
    os.environ.setdefault("CONTAINERS_CONF", str(ROOT / "tests" / "images" / "containers.conf"))
    WORK.mkdir(parents=True, exist_ok=True)
    data = json.loads(RAW_JSON.read_text(encoding="utf-8")) if RAW_JSON.exists() else {"figures": {}}
    data.update(machine=machine(settings["connection"]), settings=settings, command="make bench")
    # None: the bench's base image, without the packages.
    fleet_image = PREINSTALLED_IMAGE if settings["fleet_packages"] == "preinstalled" else None
    lab = Lab(settings["connection"])
    ansible = Ansible(lab)
    started = time.monotonic()
    try:
        bundle = set_up_lab(lab, figures, fleet_image)
        data["setup_seconds"] = round(time.monotonic() - started, 1)
        for figure in figures:
            figure_started = time.monotonic()
            if figure == "converge":
                result = figure_converge(lab, ansible, settings["runs"], bundle)
            elif figure == "fleet":
                result = figure_fleet(lab, ansible, settings["runs"], settings["fleet"], bundle, fleet_image,
                                      keep="failover" in figures[figures.index(figure):])
            elif figure == "failover":
                # The relays stay (idle) until the end: removing a container can make the lab's DNS
                # miss look-ups for a moment, which figure 4 would measure.
                result = figure_failover(ready_relays(lab, ansible, bundle, 2 * settings["runs"]))
            else:
                ready_relays(lab, ansible, bundle, 1)
                result = figure_throughput(lab, settings["runs"], settings["messages"], settings["reference_messages"])
            result.update(date=data["machine"]["date"], bench_seconds=round(time.monotonic() - figure_started, 1))
            data["figures"][figure] = result
            # Written after each figure, so a later failure keeps what was measured.
            RAW_JSON.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    except BenchError as error:
        log(f"FAILED: {error}")
        return 1
    finally:
        if os.environ.get("BENCH_KEEP") == "1":
            log(f"BENCH_KEEP=1: left {', '.join(lab.started)} and {', '.join(lab.images)}")
        else:
            log("removing the bench containers")
            lab.cleanup()
    data["total_seconds"] = round(time.monotonic() - started, 1)
    log(f"done in {data['total_seconds']} s")
    write_report(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
