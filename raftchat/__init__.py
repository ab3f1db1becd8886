"""raftchat: a chat service replicated with Raft."""
