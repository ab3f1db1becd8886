"""How node-to-node traffic flows, and how to cut it: network namespaces or TCP proxies."""
