from raftchat.cli import main

raise SystemExit(main())
