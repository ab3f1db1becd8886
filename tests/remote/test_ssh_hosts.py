"""Clusters on SSH hosts: real sshd in network namespaces, each "host" with its own address.

h1-h5 are good hosts, h6 is bare (no python3, no etcd on its PATH), h7 has no sshd at all. All
hosts share this machine's file system, so each check of "nothing left" looks at that host's own
run directory (``/tmp/raftchat-harness/<name>``), its namespace's processes and its iptables rules.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sshhosts
from support import wait_until

from harness import cli
from remote.hosts import DEFAULT_DIR

pytestmark = pytest.mark.cluster
GOOD = ["h1", "h2", "h3", "h4", "h5"]
HARNESS = [sys.executable, "-m", "harness.cli"]


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    why = sshhosts.missing()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("ssh-hosts")
    made = sshhosts.make_hosts(root, [*GOOD, "h6", "h7"], no_sshd=("h7",), bare=("h6",))
    made.baseline = {n: made.rules(n) for n in made.sshd}  # type: ignore[attr-defined]
    yield made
    sshhosts.remove_hosts(made)


def host_dir(name: str) -> Path:
    return Path(DEFAULT_DIR) / name


def assert_nothing_left(hosts, names: list[str]) -> None:
    """No run directory, no process but sshd, no rule and no qdisc the run added, on each host."""
    for name in names:
        assert not host_dir(name).exists() or not any(host_dir(name).iterdir()), (
            f"{name}: files left in {host_dir(name)}: {sorted(p.name for p in host_dir(name).iterdir())}"
        )
        assert hosts.rules(name) == hosts.baseline[name], f"{name}: iptables rules left:\n{hosts.rules(name)}"
        assert "netem" not in hosts.qdiscs(name)
        wait_until(f"the harness's SSH sessions on {name} to end", lambda n=name: not hosts.sessions(n), 10)
        assert hosts.other_processes(name) == [], f"{name}: processes left"


@pytest.mark.slow
def test_five_hosts_with_partitions_kills_and_pauses(hosts, tmp_path):
    hosts_file = sshhosts.write_hosts(tmp_path / "hosts.yaml", [hosts.entry(n) for n in GOOD])
    store = tmp_path / "store"
    # Seed 8 draws partition, kill and pause as its first three faults (1.5 s apart).
    args = ["run", "--hosts", str(hosts_file), "--store", str(store), "--quiet", "--seed", "8"]
    args += ["--workload", "register", "--time-limit", "12", "--nemesis", "partition,kill,pause"]
    args += ["--nemesis-interval", "1.5", "--rate", "40", "--concurrency", "5"]
    code = cli.main(args)
    run = (store / "latest").resolve()
    results = json.loads((run / "results.json").read_text())
    assert code == 0, results.get("error") or results.get("verdict")
    assert results["valid"] is True and results["stats"]["client_ops"] > 50

    starts = [json.loads(line) for line in (run / "history.jsonl").open() if '"nemesis"' in line]
    starts = [r["value"] for r in starts if r.get("f") == "start"]
    kinds = {v["action"] for v in starts}
    assert {"cut", "kill", "pause"} <= kinds, starts
    for value in starts:
        named = set(value.get("nodes", [])) | {n for pair in value.get("cut", []) for n in pair}
        assert named and named <= set(GOOD), value  # the faults name the hosts
    cut = next(v for v in starts if v["action"] == "cut")
    assert all(len(pair) == 2 for pair in cut["cut"])

    for name in GOOD:  # each node's log and data came back from its host
        assert (run / "logs" / f"{name}.log").stat().st_size > 0
        assert list((run / "cluster" / name).glob("log-*.seg")), f"no Raft log came back from {name}"
    remote = results["remote"]
    assert set(remote["hosts"]) == set(GOOD) and remote["setup_s"] > 0 and remote["teardown_s"] > 0
    assert all(any("iptables chain" in item for item in remote["removed"][n]) for n in GOOD)
    assert_nothing_left(hosts, GOOD)


@pytest.mark.slow
def test_etcd_members_on_hosts(hosts, tmp_path):
    """etcd, installed on every host (here: this machine's package), run over SSH like raftchat."""
    import shutil

    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (apt-get install etcd-server)")
    names = ["h1", "h2", "h3"]
    hosts_file = sshhosts.write_hosts(tmp_path / "hosts.yaml", [hosts.entry(n) for n in names])
    store = tmp_path / "store"
    args = ["run", "--hosts", str(hosts_file), "--store", str(store), "--quiet", "--system", "etcd"]
    args += [
        "--seed",
        "8",
        "--time-limit",
        "8",
        "--nemesis",
        "partition,kill,pause",
        "--nemesis-interval",
        "1.5",
    ]
    args += ["--rate", "40", "--concurrency", "4"]
    code = cli.main(args)
    results = json.loads(((store / "latest").resolve() / "results.json").read_text())
    assert code == 0, results.get("error") or results.get("verdict")
    assert "(on h1)" in results["system_version"] and set(results["remote"]["hosts"]) == set(names)
    history = (store / "latest" / "history.jsonl").read_text()
    assert '"action":"cut"' in history and '"action":"kill"' in history
    assert all((store / "latest" / "logs" / f"{n}.log").stat().st_size > 0 for n in names)
    assert_nothing_left(hosts, names)


def _fails_with(capsys, tmp_path, entries, *extra: str) -> str:
    hosts_file = sshhosts.write_hosts(tmp_path / "hosts.yaml", entries)
    store = tmp_path / "store"
    code = cli.main(["run", "--hosts", str(hosts_file), "--store", str(store), "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == 3, err
    assert not store.exists() or not any(store.rglob("results.json")), "a run that could not start was stored"
    return err


def test_unusable_hosts_are_named_and_nothing_is_left(hosts, tmp_path, capsys):
    entry = hosts.entry
    err = _fails_with(capsys, tmp_path, [entry("h1"), entry("h7")])
    assert "host h7" in err and "cannot connect" in err and "host h1 " not in err

    err = _fails_with(capsys, tmp_path, [entry("h1"), entry("h2", identity_file=str(hosts.wrong_key))])
    assert "host h2" in err and "refused" in err and str(hosts.wrong_key) in err

    err = _fails_with(capsys, tmp_path, [entry("h1"), entry("h6")])
    assert "host h6" in err and "no python3" in err and "host h1 " not in err

    err = _fails_with(capsys, tmp_path, [entry("h1"), entry("h6")], "--system", "etcd")
    assert "host h6" in err and "`etcd` (apt-get install etcd-server)" in err

    from nemesis.net.netns import NetnsNetwork

    if not NetnsNetwork.netem_available():  # the hosts share this kernel: 'delay' is refused plainly
        err = _fails_with(capsys, tmp_path, [entry("h1"), entry("h2")], "--nemesis", "delay")
        assert "host h1" in err and "host h2" in err and "netem" in err
    assert_nothing_left(hosts, ["h1", "h2", "h6"])


def _harness_running(hosts, names: list[str], tmp_path: Path, label: str) -> subprocess.Popen:
    """A ``harness run`` on these hosts in a process of its own, once its nodes and chains exist."""
    hosts_file = tmp_path / "hosts.yaml"
    cmd = [*HARNESS, "run", "--hosts", str(hosts_file), "--store", str(tmp_path / "store"), "--quiet"]
    cmd += ["--workload", "register", "--time-limit", "120", "--nemesis", "partition-one", "--rate", "20"]
    log = open(tmp_path / f"harness-{label}.log", "wb")  # noqa: SIM115
    harness = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)

    def running() -> bool:
        if harness.poll() is not None:
            raise AssertionError(f"harness exited early: {(tmp_path / f'harness-{label}.log').read_text()}")
        pids = [p for n in names for p in Path(DEFAULT_DIR).glob(f"{n}/*/{n}/supervisor.pid")]
        return len(pids) == len(names) and all("RC-" in hosts.rules(n) for n in names)

    try:
        wait_until("the nodes to run on every host", running, 120)
    except BaseException:
        harness.kill()
        harness.wait()
        raise
    return harness


@pytest.mark.slow
def test_ctrl_c_and_a_killed_harness_leave_nothing_after_cleanup(hosts, tmp_path):
    names = ["h1", "h2"]
    hosts_file = sshhosts.write_hosts(tmp_path / "hosts.yaml", [hosts.entry(n) for n in names])

    harness = _harness_running(hosts, names, tmp_path, "interrupted")
    os.killpg(harness.pid, signal.SIGINT)  # Ctrl-C: the run tears itself down
    assert harness.wait(60) == 3
    assert_nothing_left(hosts, names)

    harness = _harness_running(hosts, names, tmp_path, "killed")
    os.kill(harness.pid, signal.SIGKILL)  # a crash: no teardown at all
    harness.wait(10)
    for name in names:
        assert hosts.other_processes(name), f"{name}: the killed run's node should still run"

    cleanup = [*HARNESS, "cleanup", "--hosts", str(hosts_file)]
    dry = subprocess.run([*cleanup, "--dry-run"], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert all(f"host {n}: run " in dry.stdout for n in names), dry.stdout
    assert all(hosts.other_processes(n) for n in names)  # a dry run removes nothing

    done = subprocess.run(cleanup, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in names:
        assert f"host {name}: process" in done.stdout and f"host {name}: iptables chain" in done.stdout
    assert_nothing_left(hosts, names)
    again = subprocess.run(cleanup, capture_output=True, text=True)
    assert "nothing left behind" in again.stdout


def test_a_cut_connection_is_opened_again_and_failures_name_host_command_status(hosts):
    from remote.hosts import parse_hosts
    from remote.ssh import CommandFailed, Connections

    conns = Connections(parse_hosts([hosts.entry("h1")]))
    try:
        assert conns.run("h1", "echo $((6 * 7))").stdout.strip() == "42"
        session = wait_until("the harness's sshd session on h1", lambda: _session_pids(hosts, "h1"), 10)
        for pid in session:  # the host drops the connection (as a reboot or a cut would)
            os.kill(pid, signal.SIGKILL)
        wait_until("the connection to notice", lambda: all(c.is_closed() for c in conns._conns.values()), 10)
        assert conns.run("h1", "echo again").stdout.strip() == "again"
        assert conns.reconnects["h1"] == 1
        # A command in flight when the connection is cut is sent again on a new one.
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(conns.run, "h1", "sleep 1; echo done")
            for pid in wait_until("the command's session", lambda: _session_pids(hosts, "h1"), 10):
                os.kill(pid, signal.SIGKILL)
            assert pending.result(30).stdout.strip() == "done"
        assert conns.reconnects["h1"] == 2
        with pytest.raises(CommandFailed) as failed:
            conns.run("h1", "echo oops >&2; exit 7")
        message = str(failed.value)
        assert "host h1" in message and "echo oops" in message and "status 7" in message and "oops" in message
        with pytest.raises(CommandFailed, match="timed out"):
            conns.run("h1", "sleep 7", timeout=0.5)
        wait_until(  # the host ended it too
            "the timed-out command to end on h1",
            lambda: not any("sleep 7" in c for c in hosts.other_processes("h1")),
            5,
        )
    finally:
        conns.close()


def _session_pids(hosts, name: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", hosts.namespace(name)], capture_output=True, text=True)
    pids = []
    for word in out.stdout.split():
        if int(word) == hosts.sshd[name].pid:
            continue
        try:
            cmdline = Path(f"/proc/{word}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if cmdline.startswith("sshd:"):
            pids.append(int(word))
    return pids


def test_cuts_and_loss_are_rules_on_the_hosts_and_go_away(hosts):
    from raftchat.localcluster import loopback_config
    from remote.hosts import parse_hosts
    from remote.session import Session
    from systems import make_system

    names = ["h1", "h2", "h3"]
    session = Session(
        parse_hosts([hosts.entry(n) for n in names]), make_system("raftchat"), ["partition", "loss"]
    )
    try:
        session.preflight()
        network = session.network()
        config = network.setup(loopback_config(3))
        assert config.ids == names and config.node("h2").peer.startswith(hosts.ips["h2"] + ":")

        def reaches(src: str, dst: str) -> bool:  # h2's sshd, from inside h1's namespace
            probe = f"import socket; socket.create_connection(('{hosts.ips[dst]}', 22), timeout=0.5)"
            done = subprocess.run(
                ["ip", "netns", "exec", hosts.namespace(src), sys.executable, "-c", probe],
                capture_output=True,
            )
            return done.returncode == 0

        assert reaches("h1", "h2") and reaches("h3", "h2")
        network.cut([frozenset({"h1", "h2"})])
        assert not reaches("h1", "h2") and not reaches("h2", "h1") and reaches("h3", "h2")
        assert f"-s {hosts.ips['h2']}/32 -j DROP" in hosts.rules("h1")
        assert session.conns.run("h2", "echo reachable").stdout.strip() == "reachable"  # the control's SSH
        network.heal()
        assert reaches("h1", "h2")
        network.slow(["h3"], loss=0.5)
        assert "--probability 0.5" in hosts.rules("h3") and "--probability 0.5" in hosts.rules("h1")
        network.clear_slow()
        assert "statistic" not in hosts.rules("h3")
        network.teardown()
    finally:
        session.close()
    assert_nothing_left(hosts, names)
