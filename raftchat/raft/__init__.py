"""The Raft consensus layer. It knows nothing about chat: commands are opaque bytes."""
