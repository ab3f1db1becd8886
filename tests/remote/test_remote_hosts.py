"""The ``hosts:`` plan key and ``--hosts`` files: what is accepted, and errors that name the entry."""

from __future__ import annotations

import pytest
import yaml

from harness import plan as plans
from remote import record
from remote.hosts import HostsError, load_hosts_file, parse_hosts


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "id_test"
    path.write_text("not checked until the connection\n")
    return str(path)


def test_entries_and_aliases(key):
    hosts = parse_hosts(
        [
            {"name": "db1", "address": "10.0.0.1", "user": "root", "port": 2222, "identity_file": key},
            {"address": "db2.example.com"},
            "db3",  # an alias of ~/.ssh/config
        ]
    )
    assert [h.name for h in hosts] == ["db1", "db2.example.com", "db3"]
    assert hosts[0].port == 2222 and hosts[0].identity_file == key and hosts[0].base_dir.endswith("/db1")
    assert hosts[1].user is None and hosts[1].port is None  # the SSH config's, or the defaults
    assert hosts[2].alias and hosts[2].to_dict() == "db3"
    assert parse_hosts([h.to_dict() for h in hosts]) == hosts  # the stored plan replays it


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([], "non-empty list"),
        ([{"name": "a"}], r"hosts\[0\]: 'address'.*required"),
        ([{"address": "x", "prot": 22}], r"hosts\[0\]: unknown key\(s\) prot"),
        ([{"address": "x", "port": 70000}], r"hosts\[0\]\.port must be a TCP port"),
        (
            [{"address": "x", "identity_file": "/nonexistent/key"}],
            r"identity_file: no key file at /nonexistent/key",
        ),
        ([{"address": "x", "dir": "relative/dir"}], r"\.dir must be an absolute path"),
        ([{"address": "x", "name": "bad name"}], r"hosts\[0\]\.name: 'bad name' cannot name a host"),
        ([{"address": "x", "name": "a"}, {"address": "y", "name": "a"}], r"hosts\[1\]: name 'a' is already"),
        ([42], r"hosts\[0\]: a host is a mapping"),
    ],
)
def test_bad_entries_are_named(entries, expected):
    with pytest.raises(HostsError, match=expected):
        parse_hosts(entries)


def test_plan_with_hosts(tmp_path, key):
    hosts_file = tmp_path / "hosts.yaml"
    hosts_file.write_text(
        yaml.safe_dump({"hosts": [{"address": f"10.0.0.{i}", "identity_file": key} for i in (1, 2, 3)]})
    )
    plan = plans.load({"hosts": str(hosts_file), "nemesis": ["partition", "kill"]})
    assert plan.nodes == 3 and [h["address"] for h in plan.hosts] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert plans.load(plan).hosts == plan.hosts  # the stored plan loads as it was run
    assert plans.load(None).hosts is None  # without hosts, runs stay local

    with pytest.raises(plans.PlanError, match=r"'nodes' is 5 but 'hosts' names 3"):
        plans.load({"hosts": str(hosts_file), "nodes": 5})
    with pytest.raises(plans.PlanError, match=r"'net': with 'hosts'"):
        plans.load({"hosts": str(hosts_file), "net": "proxy"})
    with pytest.raises(plans.PlanError, match=r"'hosts': .*missing\.yaml: cannot read"):
        plans.load({"hosts": str(tmp_path / "missing.yaml")})
    hosts_file.write_text("- {address: a, port: nope}\n")
    with pytest.raises(HostsError, match=r"hosts\.yaml: hosts\[0\]\.port"):
        load_hosts_file(hosts_file)


def test_records_are_read_back_and_undone_by_one_script():
    run = "/tmp/raftchat-harness/h1/abcd1234"
    listing = (
        f"== {run}/record.jsonl\n"
        '{"tag": "abcd1234", "owner": {"host": "elsewhere", "pid": 1, "start": 1}}\n'
        '{"chain": "RC-abcd1234-CUT"}\n{"qdisc": "eth0"}\nnot json\n'
    )
    runs = record.parse_listing(listing)
    assert list(runs) == [run] and len(runs[run]) == 3
    assert not record.owner_alive(runs[run][0])  # another control machine's: a leftover here
    script = record.undo_script(run, runs[run], "/tmp/raftchat-harness/h1")
    assert "iptables -w -X RC-abcd1234-CUT" in script and "tc qdisc del dev eth0 root" in script
    assert f"RUN={run}" in script and 'rm -rf "$RUN"' in script
