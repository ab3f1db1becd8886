"""Running a cluster on real hosts over SSH, one node per host, the way Jepsen runs a test.

``hosts`` reads and checks the plan's ``hosts:`` entries; ``ssh`` keeps one asyncssh connection per
host and runs commands with timeouts; ``install`` builds the wheels a host needs and installs them
into a virtualenv there; ``record`` keeps, on every host, an append-only list of what a run added
(processes, iptables chains, qdiscs, its directory) so that ``cleanup`` can undo a killed run;
``network`` cuts and slows links with iptables and tc on each host; ``cluster`` starts, stops, kills
and pauses raftchat nodes by pid; ``session`` composes them for one run.
"""
