"""Optional TLS on peer and client links, from the certificates that ``cluster.yaml`` names.

``tls: {ca, cert, key}`` (paths relative to the cluster file): every node serves both ports
with ``cert``/``key``; peers also present it when they dial and require one signed by
``ca``; clients verify the node's certificate against ``ca`` and its address. TLS keeps the
traffic private and unaltered; membership is still proven by the peer hello (raftchat.auth),
so peers do not check each other's host names (a route may pass through a proxy).
"""

from __future__ import annotations

import ssl

from raftchat.config import ConfigError, TLSFiles


def _context(purpose: ssl.Purpose, files: TLSFiles, own_cert: bool) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(purpose, cafile=files.ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if own_cert:
            context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"tls: cannot load the certificates ({files}): {exc}") from exc
    return context


def peer_server(files: TLSFiles | None) -> ssl.SSLContext | None:
    """For the peer port: our certificate, and the dialer must show one signed by the CA."""
    if files is None:
        return None
    context = _context(ssl.Purpose.CLIENT_AUTH, files, own_cert=True)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def peer_client(files: TLSFiles | None) -> ssl.SSLContext | None:
    """For dialing a peer: show our certificate, accept the CA's without a host-name check."""
    if files is None:
        return None
    context = _context(ssl.Purpose.SERVER_AUTH, files, own_cert=True)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_server(files: TLSFiles | None) -> ssl.SSLContext | None:
    """For the client port: our certificate; clients show none (passwords identify them)."""
    if files is None:
        return None
    return _context(ssl.Purpose.CLIENT_AUTH, files, own_cert=True)


def client(files: TLSFiles | None) -> ssl.SSLContext | None:
    """For a client: the node's certificate must be the CA's and name the node's address."""
    if files is None:
        return None
    return _context(ssl.Purpose.SERVER_AUTH, files, own_cert=False)
