"""Tests of sluice_function.py: a server on a temporary Unix socket, spoken to with raw HTTP/1.1.

Covers ready, invoke, bad JSON (400), handler exceptions (500), 404, chunked (400), oversized (413),
keep-alive (two requests on one connection), concurrency, thread reuse, the echo function run as
a script, and printed output reaching the worker before each answer.
Standard library only: ``python3 -m unittest discover -s sdk/python``.
"""

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_function  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def handler(event):
    if isinstance(event, dict) and "fail" in event:
        raise ValueError(event["fail"])
    if isinstance(event, dict) and "sleep" in event:
        time.sleep(event["sleep"])
    if isinstance(event, dict) and "unserialisable" in event:
        return {"x": object()}
    if isinstance(event, dict) and "thread" in event:
        return {"thread": threading.current_thread().name}  # names are never reused; idents are
    return {"echo": event}


class Conn:
    """A raw HTTP/1.1 client over one Unix-socket connection."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")

    def send(self, raw):
        self.sock.sendall(raw)

    def response(self):
        status = int(self.file.readline().split(b" ")[1])
        headers = {}
        while True:
            line = self.file.readline().rstrip(b"\r\n")
            if not line:
                break
            k, v = line.split(b":", 1)
            headers[k.strip().lower().decode()] = v.strip().decode()
        body = self.file.read(int(headers["content-length"]))
        return status, headers, body

    def close(self):
        self.file.close()
        self.sock.close()


def post(body, path="/invoke"):
    if isinstance(body, str):
        body = body.encode()
    return b"POST %s HTTP/1.1\r\nHost: f\r\nContent-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)


class ServerTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "fn.sock")
        with open(self.path, "w") as f:
            f.write("stale")  # must be replaced
        self.server = sluice_function.make_server(handler, self.path)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()
        self.dir.cleanup()

    def request(self, raw):
        c = Conn(self.path)
        try:
            c.send(raw)
            return c.response()
        finally:
            c.close()

    def test_ready(self):
        status, _, body = self.request(b"GET /ready HTTP/1.1\r\nHost: f\r\n\r\n")
        self.assertEqual((status, body), (200, b"ok"))

    def test_invoke(self):
        status, headers, body = self.request(post('{"name": "x"}'))
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(json.loads(body), {"echo": {"name": "x"}})
        status, _, body = self.request(post("[1, 2]"))
        self.assertEqual(json.loads(body), {"echo": [1, 2]})
        status, _, body = self.request(post(""))
        self.assertEqual((status, json.loads(body)), (200, {"echo": None}))

    def test_bad_json_is_400(self):
        for bad in ("{nope", b"\xff\xfe"):
            status, _, body = self.request(post(bad))
            self.assertEqual(status, 400)
            self.assertIn("invalid JSON", json.loads(body)["error"])

    def test_handler_exception_is_500(self):
        with contextlib.redirect_stderr(io.StringIO()) as err:  # the helper prints the traceback
            status, _, body = self.request(post('{"fail": "no model"}'))
            self.assertEqual((status, json.loads(body)), (500, {"error": "ValueError: no model"}))
            status, _, body = self.request(post('{"unserialisable": 1}'))
            self.assertEqual(status, 500)
            self.assertIn("TypeError", json.loads(body)["error"])
        self.assertIn("Traceback", err.getvalue())

    def test_other_paths_and_framing(self):
        status, _, body = self.request(b"GET /nope HTTP/1.1\r\n\r\n")
        self.assertEqual(status, 404)
        self.assertIn("error", json.loads(body))
        self.assertEqual(self.request(post("{}", path="/nope"))[0], 404)
        self.assertEqual(self.request(b"GET /invoke HTTP/1.1\r\n\r\n")[0], 405)
        chunked = b"POST /invoke HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        self.assertEqual(self.request(chunked)[0], 400)
        status, headers, _ = self.request(b"POST /invoke HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n")
        self.assertEqual((status, headers["connection"]), (413, "close"))
        self.assertEqual(self.request(b"POST /invoke HTTP/1.1\r\nContent-Length: x\r\n\r\n")[0], 400)
        status, _, body = self.request(b"garbage\r\n\r\n")
        self.assertEqual(status, 400)
        self.assertIn("error", json.loads(body))

    def test_keep_alive(self):
        c = Conn(self.path)
        try:
            c.send(post('{"i": 1}') + post('{"i": 2}'))  # pipelined
            self.assertEqual(json.loads(c.response()[2]), {"echo": {"i": 1}})
            self.assertEqual(json.loads(c.response()[2]), {"echo": {"i": 2}})
            c.send(post("{bad"))
            self.assertEqual(c.response()[0], 400)  # framing intact: the connection survives
            c.send(b"GET /ready HTTP/1.1\r\nConnection: close\r\n\r\n")
            status, headers, _ = c.response()
            self.assertEqual((status, headers["connection"]), (200, "close"))
            self.assertEqual(c.file.read(), b"")  # server closed
        finally:
            c.close()

    def wait_for_an_idle_thread(self):
        """The client has its answer before the serving thread is back in the pool; wait for it."""
        deadline = time.monotonic() + 5
        while self.server._idle == 0:
            self.assertLess(time.monotonic(), deadline, "no serving thread went idle within 5 s")
            time.sleep(0.001)

    def test_connection_threads_are_reused(self):
        served_by = set()
        for _ in range(50):
            status, _, body = self.request(post('{"thread": true}'))
            self.assertEqual(status, 200)
            served_by.add(json.loads(body)["thread"])
            self.wait_for_an_idle_thread()
        # One connection at a time, each opened once a thread is idle: one thread serves them all.
        self.assertEqual(len(served_by), 1, served_by)

    def test_concurrent_requests_run_in_parallel(self):
        results = []
        t0 = time.monotonic()
        threads = [
            threading.Thread(target=lambda: results.append(self.request(post('{"sleep": 0.3}'))[0]))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 4)
        self.assertLess(time.monotonic() - t0, 1.0)


class ScriptTest(unittest.TestCase):
    def test_running_the_module_serves_echo(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "echo.sock")
            env = dict(os.environ, SLUICE_SOCKET=path)
            proc = subprocess.Popen([sys.executable, os.path.join(HERE, "sluice_function.py")], env=env)
            try:
                deadline = time.monotonic() + 10
                while True:
                    try:
                        c = Conn(path)
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.02)
                try:
                    c.send(post('{"a": [1, "b"]}'))
                    status, _, body = c.response()
                    self.assertEqual((status, json.loads(body)), (200, {"a": [1, "b"]}))
                finally:
                    c.close()
            finally:
                proc.terminate()
                proc.wait(10)

    def test_printed_output_is_flushed_before_the_answer(self):
        # stdout to a pipe is block-buffered: without the flush, the line would wait in the
        # process and the worker would not see it as part of the invocation.
        script = (
            "import sys; sys.path.insert(0, %r); import sluice_function as f\n"
            "def h(e):\n    print('printed', e)\n    return e\n"
            "f.serve(h)\n" % HERE
        )
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "p.sock")
            env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
            env["SLUICE_SOCKET"] = path
            proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 10
                while True:
                    try:
                        c = Conn(path)
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.02)
                try:
                    c.send(post("7"))
                    self.assertEqual(c.response()[0], 200)
                finally:
                    c.close()
                import select

                ready, _, _ = select.select([proc.stdout], [], [], 0)
                self.assertTrue(ready, "nothing printed had reached the pipe with the answer")
                self.assertEqual(os.read(proc.stdout.fileno(), 100), b"printed 7\n")
            finally:
                proc.terminate()
                proc.wait(10)
                proc.stdout.close()

    def test_missing_socket_env_exits_with_message(self):
        env = {k: v for k, v in os.environ.items() if k != "SLUICE_SOCKET"}
        out = subprocess.run(
            [sys.executable, os.path.join(HERE, "sluice_function.py")], env=env, capture_output=True, timeout=10
        )
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(b"SLUICE_SOCKET", out.stderr)


if __name__ == "__main__":
    unittest.main()
