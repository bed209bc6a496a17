"""devtools.rawhttp reads one HTTP response whole: the body by its Content-Length even when it arrives after the
headers, and what arrived when the peer closes first."""

import socket
import threading

from devtools.rawhttp import read_response

HEAD = b"HTTP/1.1 413 Request Entity Too Large\r\ncontent-type: application/json\r\ncontent-length: 21\r\n\r\n"
BODY = b'{"error":"too_large"}'


def _served(*parts: bytes, close: bool) -> bytes:
    ours, theirs = socket.socketpair()
    ours.settimeout(5)

    def send():
        for part in parts:
            theirs.sendall(part)
        if close:
            theirs.close()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        return read_response(ours, timeout=5)
    finally:
        sender.join()
        ours.close()
        if not close:
            theirs.close()


def test_the_body_is_read_by_its_length_across_segments():
    assert _served(HEAD, BODY[:5], BODY[5:], close=False) == HEAD + BODY


def test_a_closed_connection_ends_the_answer():
    assert _served(HEAD, BODY[:5], close=True) == HEAD + BODY[:5]
