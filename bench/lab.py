"""The bench's lab: its containers on the podman network, Ansible runs against them, and shared helpers.

Every figure module (figure_*.py) measures with these; bench/run.py sets the lab up and tears it down.
Containers are named PREFIX + their role, carry the project's label and get static addresses from the
bench's range of the lab network, so a name always has the same address.
"""
import concurrent.futures
import datetime
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SHARED = ROOT / "molecule" / "shared"
CONVERGE = SHARED / "converge.yml"
WORK = ROOT / ".tmp" / "bench"
BIN = Path(sys.executable).parent

IMAGE = os.environ.get("LAB_IMAGE", "localhost/smarthost-debian12:latest")
NETWORK = os.environ.get("LAB_NETWORK", "smarthost-lab")
# The project's label: containers carry LABEL=container, images LABEL=image (see the Makefile).
LABEL = os.environ.get("LAB_LABEL", "smarthost.postfix")
# Every container of the bench is named PREFIX + its role (the project's names all start with smarthost-).
PREFIX = "smarthost-bn-"
PREINSTALLED_IMAGE = "localhost/smarthost-bench-preinstalled:latest"
# The lab image plus an SSH server: Ansible reaches the bench's hosts over SSH with pipelining, as it
# reaches a fleet. The podman connection plugin cannot pipeline and costs about a second a task.
SSH_IMAGE = "localhost/smarthost-bench-ssh:latest"
SSH_KEY = WORK / "ssh" / "id_ed25519"
CONNECTIONS = {"ssh": "Ansible over SSH with pipelining (lab image plus openssh-server)",
               "podman": "Ansible over the containers.podman.podman connection (no pipelining)"}

# RELAY serves the failover and throughput figures; REFERENCE_RELAY, converged the same way, runs the
# failover reference (Postfix's defaults) at the same moment as RELAY runs the role's settings.
UPSTREAM_A, UPSTREAM_B, RELAY, REFERENCE_RELAY = (PREFIX + role for role in ("a", "b", "relay", "relay-ref"))
# PACKAGES times the bare package install; BASE is the container that the bench's images are committed from.
PACKAGES, BASE = PREFIX + "pkg", PREFIX + "base"
# A primary upstream whose name has several addresses: MULTI_NAME is a network alias that the
# containers MULTI_HOSTS share, so the lab's DNS (aardvark) answers it with one A record each.
MULTI_NAME = PREFIX + "multi"
MULTI_HOSTS = tuple(f"{PREFIX}m{number}" for number in range(1, 4))
ADDRESSES = {UPSTREAM_A: "10.89.77.100", UPSTREAM_B: "10.89.77.101", RELAY: "10.89.77.102",
             PACKAGES: "10.89.77.103", REFERENCE_RELAY: "10.89.77.104", BASE: "10.89.77.105"}
ADDRESSES.update({name: f"10.89.77.{106 + index}" for index, name in enumerate(MULTI_HOSTS)})
# The fleet's relays of all sizes run at once, numbered from 1 at .111: up to .139 (.140 is the allowed client).
# Here about 30 systemd containers at once are the most that boot: systemd in later ones stops early (each takes
# inotify instances, and the host's fs.inotify.max_user_instances is 128), so the default sizes add up to 21.
FLEET, FLEET_FIRST_ADDRESS, FLEET_MAX = PREFIX + "f", 111, 29
ALLOWED_CLIENT = "10.89.77.140"

LAB = yaml.safe_load((SHARED / "vars" / "lab.yml").read_text(encoding="utf-8"))
MAILDIR = LAB["lab_maildir"]
RECIPIENT = LAB["lab_recipient"]
CA_BUNDLE = LAB["lab_ca_bundle"]
# Where the sink role keeps its CA certificate (sink_tls_dir's default).
SINK_CA = "/etc/sink/tls/ca.pem"
SENDER = "bench@example.com"

# The package install the role performs, done the way its module does it (noninteractive, debconf
# defaults), timed on its own as the reference for the first converge and used for the fleet image.
PACKAGE_INSTALL = ("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix libsasl2-modules"
                   " >/dev/null")
# An nftables rule that silently drops SMTP submission packets (the upstream "drops packets").
DROP_SMTP = ("nft add table inet bn && nft add chain inet bn input '{ type filter hook input priority 0; }'"
             " && nft add rule inet bn input tcp dport '{ 587, 465 }' drop")

# A container's CPU time in nanoseconds as podman's cgroupfs manager keeps it under cgroup v1 (as here).
CPU_USAGE = "/sys/fs/cgroup/cpuacct/libpod_parent/libpod-{id}/cpuacct.usage"

# Seconds a container may take to boot (systemctl is-system-running --wait).
BOOT_TIMEOUT = 420

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
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise BenchError(f"{shlex.join(cmd)} did not end within {timeout} s") from error
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


def in_parallel(func, items):
    """func(item) for every item, side by side (set-up steps, never a measurement); the first error is raised."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(func, item) for item in items]:
            future.result()


def address(name):
    """The static address of a bench container."""
    if name in ADDRESSES:
        return ADDRESSES[name]
    return f"10.89.77.{FLEET_FIRST_ADDRESS + int(name.removeprefix(FLEET)) - 1}"


def mac_address(name):
    """A locally administered MAC derived from the container's address."""
    return "02:00:" + ":".join(f"{int(octet):02x}" for octet in address(name).split("."))


def fleet_names(count):
    """The names of the first count fleet relays."""
    return [f"{FLEET}{index}" for index in range(1, count + 1)]


class Lab:
    """The bench's containers on the lab network; everything started here is removed by cleanup()."""

    def __init__(self, connection):
        self.connection = connection
        self.base = IMAGE
        self.started = []
        self.images = []
        # Container IDs by name: a name comes back with a new container, and an SSH master
        # connection kept for the old one must not be reused (see Ansible.host).
        self.ids = {}
        # The relays that run, converged with the lab's settings, for the failover and throughput figures.
        self.ready = set()
        # The CA bundle the relays trust (the sinks' CAs), known once the sinks are prepared.
        self.ca_bundle = None

    def start(self, names, image=None, caps=(), alias=None, command=None):
        """Start fresh systemd containers (or, given a command, containers that run it) side by side and wait until
        they finished booting."""
        def start_one(name):
            run(["podman", "rm", "-f", "-t", "0", name], check=False)
            # Names and addresses come back with new containers: a fixed MAC per address keeps the
            # host's ARP entry right (an entry for an old MAC made SSH time out), and one left over
            # from elsewhere is dropped.
            run(["ip", "neigh", "flush", "to", address(name)], check=False)
            cmd = ["podman", "run", "-d", "--name", name, "--hostname", name, "--network", NETWORK,
                   "--ip", address(name), "--mac-address", mac_address(name), "--label", f"{LABEL}=container"]
            cmd += [arg for cap in caps for arg in ("--cap-add", cap)]
            cmd += ["--network-alias", alias] if alias else []
            self.ids[name] = run(cmd + [image or self.base] + list(command or [])).stdout.strip()
            self.started.append(name)
            if not command:
                self.wait_booted(name)
        started = time.monotonic()
        in_parallel(start_one, names)
        log(f"  {len(names)} container(s) booted in {time.monotonic() - started:.0f} s")

    @staticmethod
    def wait_booted(name):
        """Wait until systemd in the container finished booting ("degraded" is fine: some units do not start in a
        container). Polled, each look with a short timeout: right after the start systemctl may find no bus yet,
        and under load one `is-system-running --wait` hung for minutes."""
        deadline = time.monotonic() + BOOT_TIMEOUT
        state = None
        while time.monotonic() < deadline:
            try:
                state = run(["podman", "exec", name, "systemctl", "is-system-running"], check=False, timeout=30).stdout.strip()
            except BenchError:
                state = "no answer within 30 s"
            if state in ("running", "degraded"):
                return
            time.sleep(0.5)
        jobs = run(["podman", "exec", name, "systemctl", "list-jobs", "--no-pager"], check=False, timeout=30).stdout
        raise BenchError(f"{name} did not finish booting within {BOOT_TIMEOUT} s ({state}; with many systemd containers at "
                         f"once, fs.inotify.max_user_instances may be too low); its jobs:\n{jobs[-2000:]}")

    def cpu_seconds(self, names):
        """CPU seconds the containers used so far (their cgroups' cpuacct.usage, cgroup v1), None where unknown."""
        total = 0
        for name in names:
            usage = Path(CPU_USAGE.format(id=self.ids.get(name, "none")))
            if not usage.exists():
                return None
            total += int(usage.read_text(encoding="utf-8")) / 1e9
        return round(total, 3)

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
        """An image with the role's packages installed as its module would, for fleets without the package install."""
        self.start([BASE])
        self.sh(BASE, PACKAGE_INSTALL)
        self.commit(BASE, PREINSTALLED_IMAGE)

    def start_multi(self):
        """The containers that share MULTI_NAME, each dropping SMTP packets (they stand for one upstream's addresses).
        They need no systemd: each sleeps, with the nft rule."""
        self.start(list(MULTI_HOSTS), image=IMAGE, caps=["NET_ADMIN"], alias=MULTI_NAME, command=["sleep", "infinity"])
        in_parallel(lambda name: self.sh(name, DROP_SMTP), MULTI_HOSTS)

    def install_ca(self, names):
        """What prepare.yml's second play does for the relays: trust the sinks' CAs."""
        in_parallel(lambda name: self.sh(name, f"cat > {CA_BUNDLE} && chmod 0644 {CA_BUNDLE}", stdin=self.ca_bundle), names)


class Ansible:
    """ansible-playbook and ansible runs against inventories that reuse the molecule/shared playbooks."""

    def __init__(self, lab):
        self.lab = lab
        self.env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_STDOUT_CALLBACK="default",
                        ANSIBLE_PIPELINING="1", ANSIBLE_HOST_KEY_CHECKING="0",
                        ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_DEPRECATION_WARNINGS="0",
                        # Per-task times in the logs and the raw figures: where a converge spends its time.
                        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="8")
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
                "ansible_control_path_dir": str(WORK / "cp" / self.lab.ids.get(name, name)[:12])}

    def inventory(self, relays):
        """Write an inventory with the lab's groups; the sinks are always there for lab.yml's look-ups."""
        data = {"all": {
            "vars": {"ansible_python_interpreter": "/usr/bin/python3", "lab_allowed_client": ALLOWED_CLIENT},
            "children": {
                "upstreams": {"children": {"upstream_a": {"hosts": {UPSTREAM_A: self.host(UPSTREAM_A)}},
                                           "upstream_b": {"hosts": {UPSTREAM_B: self.host(UPSTREAM_B)}}}},
                "relays": {"hosts": {name: self.host(name) for name in relays}}}}}
        path = WORK / f"inventory-{relays[0] if relays else 'none'}-{len(relays)}.json"
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")
        return path

    def _run(self, cmd, label, hosts):
        """Run an Ansible command, keep its output under .tmp/bench/logs, fail with its tail.

        Returns the wall seconds, the CPU seconds that Ansible (with its forks and ssh clients) used on the
        controller and that the hosts' containers used meanwhile (the lab's hosts share the controller's CPUs),
        and the output."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        hosts_before = self.lab.cpu_seconds(hosts)
        seconds, proc = timed(subprocess.run, cmd, env=self.env, capture_output=True, text=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        hosts_after = self.lab.cpu_seconds(hosts)
        (self.logs / f"{label}.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
        if proc.returncode != 0:
            raise BenchError(f"{label} failed ({proc.returncode}), see {self.logs}/{label}.log:\n{proc.stdout[-4000:]}")
        cpu = {"controller_cpu_seconds": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 3),
               "hosts_cpu_seconds": None if None in (hosts_before, hosts_after) else round(hosts_after - hosts_before, 3)}
        return seconds, cpu, proc.stdout

    def playbook(self, playbook, relays, label, forks=5, extra_vars=None):
        """Wall seconds, the play recap (tasks that ran, changed, skipped) summed over the relays, and task times."""
        cmd = [str(BIN / "ansible-playbook"), "-i", str(self.inventory(relays)), "-f", str(forks), str(playbook)]
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        seconds, cpu, out = self._run(cmd, label, relays)
        recap = {m.group(1): [int(x) for x in m.groups()[1:]] for m in RECAP.finditer(out)}
        hosts = [recap[name] for name in relays if name in recap]
        # The recap's ok= counts every task that ran on the host, changed ones included.
        return {"seconds": seconds, **cpu, "hosts": len(hosts), "tasks": sum(h[0] for h in hosts),
                "changed": sum(h[1] for h in hosts), "skipped": sum(h[4] for h in hosts),
                "slowest_tasks": {name.strip(): float(sec) for name, sec in TASK_TIME.findall(out)}}

    def converge(self, relays, label, extra_vars=None):
        """molecule/shared/converge.yml (the relay role with the lab's upstreams) on relays, forks = their number."""
        return self.playbook(CONVERGE, relays, label, forks=len(relays), extra_vars=extra_vars)

    def ping(self, hosts, label):
        """`ansible -m ping` over hosts (forks = their number), the floor any play against them pays: its wall seconds
        and CPU seconds (see _run)."""
        cmd = [str(BIN / "ansible"), "-i", str(self.inventory(hosts)), "relays", "-f", str(len(hosts)), "-m", "ansible.builtin.ping"]
        seconds, cpu, _out = self._run(cmd, label, hosts)
        return {"seconds": seconds, **cpu}


def set_postfix(name, parameters):
    """Change main.cf parameters ({name: value}) on a running relay and reload Postfix."""
    settings = " ".join(shlex.quote(f"{key}={value}") for key, value in parameters.items())
    Lab.sh(name, f"postconf -e {settings} && postfix reload 2>/dev/null")


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


def send_mail(relay, subject, body):
    """Submit a message with sendmail on the relay; returns the relay's clock at submission."""
    message = f"From: root\nTo: {RECIPIENT}\nSubject: {subject}\n\n{body}\n"
    return float(Lab.sh(relay, "date +%s.%N && /usr/sbin/sendmail -i -t", stdin=message).stdout.split()[0])


def set_up(lab, figures, fleet_image):
    """Sinks A and B, the multi-address upstream for the failover figure, and the fleet's image."""
    if lab.connection == "ssh":
        log(f"building {SSH_IMAGE} (the lab image with an SSH server)")
        lab.build_ssh_image()
    log("starting upstream A and fallback B")
    lab.start([UPSTREAM_A, UPSTREAM_B], caps=["NET_ADMIN"])
    if "failover" in figures:
        # Started now, not between measurements: starting containers makes the lab's DNS miss look-ups for a moment.
        log(f"starting {', '.join(MULTI_HOSTS)}, which share the name {MULTI_NAME} and drop SMTP packets")
        lab.start_multi()
    builder, errors = None, []
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
    Ansible(lab).playbook(SHARED / "prepare.yml", [], "prepare")
    for sink in (UPSTREAM_A, UPSTREAM_B):
        run(["podman", "cp", str(BENCH / "lab_wait.py"), f"{sink}:/usr/local/bin/bn-lab-wait"])
    if builder:
        builder.join()
    if errors:
        raise errors[0]
    # The bundle prepare.yml installs on relays: each sink's CA (the sink role's sink_ca_pem), one after the other.
    lab.ca_bundle = "\n".join(Lab.sh(sink, f"cat {SINK_CA}").stdout for sink in (UPSTREAM_A, UPSTREAM_B)) + "\n"


def ready_relays(lab, ansible, count):
    """count converged relays for the failover and throughput figures, RELAY first: those the earlier
    figures left, and new ones converged side by side for the rest."""
    candidates = [RELAY, REFERENCE_RELAY] + fleet_names(FLEET_MAX)
    chosen = [RELAY] + [name for name in candidates[1:] if name in lab.ready][:count - 1]
    chosen += [name for name in candidates[1:] if name not in chosen and name not in lab.started][:count - len(chosen)]
    missing = [relay for relay in chosen if relay not in lab.ready]
    if missing:
        log(f"starting and converging {', '.join(missing)} (molecule/shared/converge.yml)")
        lab.start(missing)
        lab.install_ca(missing)
        ansible.converge(missing, "converge-" + "-".join(missing))
        lab.ready.update(missing)
    run(["podman", "cp", str(BENCH / "direct_send.py"), f"{RELAY}:/usr/local/bin/bn-direct-send"])
    return chosen


def git(*args):
    """Output of a git command in the tree the bench runs from ('' outside a git tree)."""
    proc = subprocess.run(["git", "-C", str(ROOT)] + list(args), capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def machine(connection):
    """Where and on what the figures were measured, with the commit of the tree."""
    meminfo = Path("/proc/meminfo").read_text(encoding="utf-8")
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpus": os.cpu_count(), "cpu_model": model.group(1) if model else platform.machine(),
            "memory_gib": round(int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1)) / 1024 / 1024, 1),
            "kernel": platform.release(),
            "podman": run(["podman", "--version"]).stdout.strip().removeprefix("podman version "),
            "ansible_core": run([str(BIN / "ansible"), "--version"]).stdout.splitlines()[0],
            "lab_image": IMAGE, "connection": CONNECTIONS[connection],
            "commit": git("rev-parse", "--short=12", "HEAD") or None,
            "commit_subject": git("log", "-1", "--format=%s")[:200] or None,
            # Uncommitted changes to what the bench measures (the docs it writes do not count).
            "dirty": bool(git("status", "--porcelain", "--", ".", ":!docs"))}
