"""HTTP on a raw socket, for requests no HTTP client would send (a declared 1 GB body, an upload held half-sent):
the bytes go out as given, and the answer is read whole."""

import socket
import time
from urllib.parse import urlsplit


def exchange(base_url: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` as it is on a fresh connection to `base_url` ("http://host:port"), then read the answer without
    sending anything more (see `read_response`)."""
    url = urlsplit(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock, timeout)


def read_response(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """One HTTP response: its headers, then as many body bytes as its Content-Length says (the body may come in a
    later segment than the headers). Less when the server closes or resets the connection or `timeout` passes
    first: what has arrived is the answer."""
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = _content_length(head)
            if length is not None and len(body) >= length:
                return data
        try:
            chunk = sock.recv(65536)
        except OSError:  # reset or timed out after (part of) the answer
            return data
        if not chunk:
            return data
        data += chunk
    return data


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return None
