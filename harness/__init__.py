"""The Jepsen-style harness that verifies raftchat: the ``harness`` command and its parts."""
