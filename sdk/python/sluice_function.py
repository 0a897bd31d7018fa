"""Write a Sluice function in Python: ``serve(handler)`` speaks the function protocol.

This one file (standard library only, Python >= 3.9) owns the Python side of the Sluice function
protocol. The worker starts the function with ``SLUICE_SOCKET=<path>`` in its environment; the
function serves HTTP/1.1 on that Unix socket:

- ``GET /ready``   -> 200 ``ok`` (as soon as the socket is bound: load models *before* ``serve``);
- ``POST /invoke`` with a JSON body -> 200 with ``handler(input)`` as JSON. An empty body is passed
  as ``None``. A body that is not JSON -> 400 ``{"error": ...}``; an exception in the handler ->
  500 ``{"error": "<ExceptionType>: <message>"}`` (the traceback goes to stderr);
- other paths -> 404; chunked bodies -> 400; bodies over 64 MiB -> 413.

What the handler prints goes to the worker, which keeps it with the invocation and in the
function's logs (``sluice logs NAME``): stdout and stderr are flushed before each answer, so
output written during an invocation is attributed to it.

Each connection is served on its own (pooled) thread, so concurrent invocations run in parallel and
the handler must be thread-safe; a connection may carry many requests (HTTP/1.1 keep-alive).

Usage::

    from sluice_function import serve

    def handler(event):
        return {"hello": event.get("name", "world")}

    if __name__ == "__main__":
        serve(handler)

Run alone (``SLUICE_SOCKET=/tmp/f.sock python3 sluice_function.py``) it serves an echo function.
"""

import http.server
import json
import os
import queue
import socketserver
import sys
import threading
import traceback

__all__ = ["serve", "make_server", "MAX_BODY", "SOCKET_ENV"]

SOCKET_ENV = "SLUICE_SOCKET"
MAX_BODY = 64 << 20

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    500: "Internal Server Error",
}


class _Server(socketserver.UnixStreamServer):
    """Serves each connection on a pooled thread: an idle one when there is one, else a new one.

    The worker's client may open a connection per invocation; handing the connection to a waiting
    thread costs far less than starting a thread (and the accept loop never waits for one to start).
    A thread idle for IDLE_EXIT seconds exits.
    """

    request_queue_size = 256
    IDLE_EXIT = 30.0

    def __init__(self, path, handler):
        self.handler = handler
        self._lock = threading.Lock()
        self._jobs = queue.SimpleQueue()
        self._idle = 0  # threads waiting for a job
        self._pending = 0  # jobs queued, never more than _idle
        super().__init__(path, _RequestHandler)

    def process_request(self, request, client_address):
        with self._lock:
            if self._idle > self._pending:
                self._pending += 1
                self._jobs.put(request)
                return
        threading.Thread(target=self._worker, args=(request,), daemon=True).start()

    def _worker(self, request):
        while request is not None:
            try:
                self.finish_request(request, "")
            except Exception:  # noqa: BLE001 - one broken connection must not end the thread
                self.handle_error(request, "")
            finally:
                self.shutdown_request(request)
            request = self._next()

    def _next(self):
        with self._lock:
            self._idle += 1
        try:
            request = self._jobs.get(timeout=self.IDLE_EXIT)
        except queue.Empty:
            with self._lock:  # puts happen under the lock: a job queued meanwhile is still ours
                try:
                    request = self._jobs.get_nowait()
                except queue.Empty:
                    self._idle -= 1
                    return None
                self._pending -= 1
                self._idle -= 1
                return request
        with self._lock:
            self._pending -= 1
            self._idle -= 1
        return request


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sluice-function"

    def address_string(self):
        # Unix-socket peers have no address; the base class would index into "".
        return "unix"

    def log_message(self, format, *args):  # noqa: A002 - base-class signature
        pass  # one line per request would cost more than the request

    def _reply(self, status, body, content_type="application/json"):
        """Writes the whole response in one write."""
        conn = b"close" if self.close_connection else b"keep-alive"
        head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n" % (
            status,
            _REASONS.get(status, "Unknown").encode(),
            content_type.encode(),
            len(body),
            conn,
        )
        self.wfile.write(head + body)

    def _error(self, status, message, close=False):
        if close:
            self.close_connection = True
        self._reply(status, json.dumps({"error": message}).encode())

    def send_error(self, code, message=None, explain=None):
        # Used by the base class for unparseable requests: answer JSON and close.
        self.close_connection = True
        try:
            self._reply(code, json.dumps({"error": message or _REASONS.get(code, "error")}).encode())
        except OSError:
            pass

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/ready":
            self._reply(200, b"ok", "text/plain")
        elif path == "/invoke":
            self._error(405, "method not allowed")
        else:
            self._error(404, "not found")

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        # Body framing first: a request we cannot frame poisons the connection.
        if self.headers.get("Transfer-Encoding") is not None:
            return self._error(400, "Transfer-Encoding (chunked) is not supported", close=True)
        lengths = self.headers.get_all("Content-Length") or ["0"]
        raw = lengths[0].strip()
        if len(set(v.strip() for v in lengths)) != 1 or not raw.isdigit() or not raw.isascii():
            return self._error(400, "bad Content-Length", close=True)
        length = int(raw)
        if length > MAX_BODY:
            return self._error(413, "request body over 64 MiB", close=True)
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            self.close_connection = True
            return
        if path == "/ready":
            return self._error(405, "method not allowed")
        if path != "/invoke":
            return self._error(404, "not found")
        self._invoke(body)

    def _invoke(self, body):
        try:
            event = json.loads(body) if body.strip() else None
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
            return self._error(400, "invalid JSON body: %s" % e)
        try:
            out = json.dumps(self.server.handler(event)).encode()
        except Exception as e:  # noqa: BLE001 - every handler failure becomes a 500
            traceback.print_exc(file=sys.stderr)
            _flush_output()
            return self._error(500, "%s: %s" % (type(e).__name__, e))
        _flush_output()
        self._reply(200, out)


def _flush_output():
    """Flushes what the handler printed, so the worker sees it before the answer."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed, or replaced by None
            pass


def make_server(handler, path):
    """Binds ``path`` (removing a stale file there first) and returns the server, not yet serving.

    Call ``serve_forever()`` on it (and ``shutdown()`` / ``server_close()`` to stop, as in tests).
    """
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return _Server(path, handler)


def serve(handler, path=None):
    """Serves ``handler`` on ``path`` (default: ``$SLUICE_SOCKET``) until the process is killed."""
    path = path or os.environ.get(SOCKET_ENV)
    if not path:
        sys.exit("%s is not set: this program is meant to be started by a Sluice worker" % SOCKET_ENV)
    server = make_server(handler, path)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    serve(lambda event: event)
