"""Tests of sluice_stage.py: a stage server on a temporary Unix socket, spoken to with raw HTTP/1.1.

Covers ready (and a ``ready`` callable), inline and shm inputs and outputs with random payloads and
several inputs per item, shm outputs overwriting recycled files (no stale tail), per-item failures,
handler exceptions and wrong results (500), bad frames (400), 404, frame encode/decode, the
concat stage run as a script, and the CUDA IPC hand-off (device outputs kept until released by a
manifest ``release`` list or ``POST /release``, device inputs, and what fails where); the handles
there are opaque made-up bytes, so no GPU is needed.
Standard library only: ``python3 -m unittest discover -s sdk/python``.
"""

import contextlib
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_stage  # noqa: E402
from sluice_stage import FrameError, decode_frame, encode_frame  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def concat_or_fail(items):
    """Concatenates each item's inputs; an item whose first input is b"fail" fails; b"boom" raises."""
    out = []
    for inputs in items:
        first = bytes(inputs[0][:4])
        if first == b"boom":
            raise RuntimeError("boom")
        if first == b"fail":
            out.append(ValueError("item refused"))
        else:
            out.append(b"".join(inputs))
    return out


class Conn:
    """A raw HTTP/1.1 client over one Unix-socket connection."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")

    def request(self, method, path, body=b"", ctype=sluice_stage.CONTENT_TYPE):
        head = "%s %s HTTP/1.1\r\nHost: s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
            method,
            path,
            ctype,
            len(body),
        )
        self.sock.sendall(head.encode() + body)
        status = int(self.file.readline().split(b" ")[1])
        headers = {}
        while True:
            line = self.file.readline().rstrip(b"\r\n")
            if not line:
                break
            k, v = line.split(b":", 1)
            headers[k.strip().lower().decode()] = v.strip().decode()
        return status, headers, self.file.read(int(headers["content-length"]))

    def close(self):
        self.file.close()
        self.sock.close()


class Batch:
    """Builds a request frame: inline payloads go to the data region, shm ones to files."""

    def __init__(self, shm_dir=None, output="inline", stage="det"):
        self.shm_dir = shm_dir
        self.manifest = {"stage": stage, "output": output, "items": []}
        self.chunks = []
        self.offset = 0
        self.files = 0

    def item(self, ident, payloads, kinds=None):
        inputs = []
        for n, payload in enumerate(payloads):
            kind = kinds[n] if kinds else "inline"
            if kind == "inline":
                inputs.append({"from": "p%d" % n, "kind": "inline", "offset": self.offset, "len": len(payload)})
                self.chunks.append(payload)
                self.offset += len(payload)
            else:
                name = "in-%d" % self.files
                self.files += 1
                with open(os.path.join(self.shm_dir, name), "wb") as f:
                    f.write(payload)
                inputs.append({"from": "p%d" % n, "kind": "shm", "path": name, "len": len(payload)})
        entry = {"id": ident, "inputs": inputs}
        if self.manifest["output"] == "shm":
            entry["out"] = "out-" + ident
        self.manifest["items"].append(entry)
        return self

    def frame(self):
        return encode_frame(self.manifest, self.chunks)


class ServerCase(unittest.TestCase):
    """A stage server on a temporary socket and shm directory, with one client connection."""

    handler = staticmethod(concat_or_fail)

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.shm = os.path.join(self.dir.name, "shm")
        os.mkdir(self.shm)
        self.path = os.path.join(self.dir.name, "stage.sock")
        self.server = sluice_stage.make_server(self.handler, self.path, shm_dir=self.shm)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.conn = Conn(self.path)

    def tearDown(self):
        self.conn.close()
        self.server.shutdown()
        self.server.server_close()
        self.dir.cleanup()

    def batch(self, frame):
        with contextlib.redirect_stderr(io.StringIO()):  # 500s print their traceback
            status, headers, body = self.conn.request("POST", "/batch", frame)
        if status == 200:
            self.assertEqual(headers["content-type"], sluice_stage.CONTENT_TYPE)
            manifest, data = decode_frame(body, "response")
            return status, manifest, data
        return status, json.loads(body), None

    def output(self, entry, data):
        self.assertTrue(entry["ok"], entry)
        out = entry["output"]
        if out["kind"] == "inline":
            return bytes(data[out["offset"] : out["offset"] + out["len"]])
        with open(os.path.join(self.shm, out["path"]), "rb") as f:
            got = f.read()
        self.assertEqual(len(got), out["len"])
        return got


class StageTest(ServerCase):
    def test_ready_and_unknown_paths(self):
        self.assertEqual(self.conn.request("GET", "/ready")[:1], (200,))
        self.assertEqual(self.conn.request("GET", "/nope")[0], 404)
        self.assertEqual(self.conn.request("POST", "/invoke", b"x")[0], 404)
        self.assertEqual(self.conn.request("GET", "/batch")[0], 405)

    def test_inline_random_payloads_several_inputs(self):
        rng = random.Random(1)
        batch = Batch()
        expected = {}
        for i in range(8):
            payloads = [rng.randbytes(rng.choice([0, 1, 100, 4096, 70000])) for _ in range(rng.randint(1, 3))]
            if payloads[0][:4] in (b"fail", b"boom"):
                payloads[0] = b"x" + payloads[0]
            batch.item("i%d" % i, payloads)
            expected["i%d" % i] = b"".join(payloads)
        status, manifest, data = self.batch(batch.frame())
        self.assertEqual(status, 200)
        self.assertEqual([e["id"] for e in manifest["items"]], list(expected))
        for entry in manifest["items"]:
            self.assertEqual(entry["output"]["kind"], "inline")
            self.assertEqual(self.output(entry, data), expected[entry["id"]])

    def test_shm_inputs_and_outputs(self):
        rng = random.Random(2)
        batch = Batch(self.shm, output="shm")
        expected = {}
        for i in range(5):
            payloads = [b"h%d" % i + rng.randbytes(rng.randint(0, 300000)) for _ in range(3)]
            batch.item("s%d" % i, payloads, kinds=["shm", "inline", "shm"])
            expected["s%d" % i] = b"".join(payloads)
        batch.item("empty", [b"", b""], kinds=["shm", "shm"])
        expected["empty"] = b""
        status, manifest, data = self.batch(batch.frame())
        self.assertEqual(status, 200)
        self.assertEqual(len(data), 0)  # everything went through shared memory
        for entry in manifest["items"]:
            self.assertEqual(entry["output"], {"kind": "shm", "path": "out-" + entry["id"], "len": len(expected[entry["id"]])})
            self.assertEqual(self.output(entry, data), expected[entry["id"]])
        # Inputs are the worker's: the stage leaves them in place.
        self.assertEqual(len([n for n in os.listdir(self.shm) if n.startswith("in-")]), 12)

    def test_shm_outputs_overwrite_recycled_files(self):
        # The worker recycles released segments: an output file may exist, longer, shorter or as
        # long as the new output. It is overwritten in place (same inode) to exactly the new bytes.
        rng = random.Random(5)
        old_sizes = {"longer": 200000, "shorter": 10, "same": 5000, "emptied": 70000}
        new_sizes = {"longer": 3000, "shorter": 150000, "same": 5000, "emptied": 0}
        inodes = {}
        for ident, size in old_sizes.items():
            path = os.path.join(self.shm, "out-" + ident)
            with open(path, "wb") as f:
                f.write(b"\xee" * size)
            inodes[ident] = os.stat(path).st_ino
        batch = Batch(self.shm, output="shm")
        expected = {}
        for ident, size in new_sizes.items():
            payload = rng.randbytes(size)
            batch.item(ident, [payload])
            expected[ident] = payload
        status, manifest, data = self.batch(batch.frame())
        self.assertEqual(status, 200)
        for entry in manifest["items"]:
            ident = entry["id"]
            self.assertEqual(entry["output"]["len"], new_sizes[ident])
            self.assertEqual(self.output(entry, data), expected[ident])
            self.assertEqual(os.stat(os.path.join(self.shm, "out-" + ident)).st_ino, inodes[ident])

    def test_recycled_files_through_kept_mappings(self):
        # As in a running pipeline: each batch's files are the previous batch's, renamed (the
        # worker's pool), longer or shorter. Inputs and outputs go through kept mappings; every
        # answer holds exactly the new bytes, and the mappings stay few and within their bound.
        rng = random.Random(9)
        maps = sluice_stage._MAPS
        maps.clear()
        previous = []
        for round_ in range(6):
            batch = Batch(self.shm, output="shm")
            batch.files = 100 * round_
            expected = {}
            for i in range(3):
                ident = "r%di%d" % (round_, i)
                payload = rng.randbytes(rng.choice([0, 10, 5000, 70000, 300000]))
                batch.item(ident, [payload], kinds=["shm"])
                expected[ident] = payload
            # Recycle: the last round's outputs become this round's output files.
            for old, entry in zip(previous, batch.manifest["items"]):
                os.rename(os.path.join(self.shm, old), os.path.join(self.shm, entry["out"]))
            status, manifest, data = self.batch(batch.frame())
            self.assertEqual(status, 200)
            for entry in manifest["items"]:
                self.assertEqual(self.output(entry, data), expected[entry["id"]])
            previous = [e["out"] for e in batch.manifest["items"]]
        self.assertLessEqual(maps.bytes, sluice_stage.MAP_CACHE_BYTES)
        # 3 recycled output files and the inputs of the rounds; deleted files' mappings go first.
        for name in os.listdir(self.shm):
            if name.startswith("in-"):
                os.unlink(os.path.join(self.shm, name))
        with maps.lock:
            maps._make_room(0)
        self.assertLessEqual(len(maps.maps), 3)

    def test_map_cache_stays_within_its_bound(self):
        maps = sluice_stage._MapCache(10000)
        paths = []
        for n, size in enumerate([4000, 4000, 4000, 20000, 100]):
            path = os.path.join(self.shm, "b%d" % n)
            with open(path, "wb") as f:
                f.write(bytes([n]) * size)
            paths.append(path)
            fd = os.open(path, os.O_RDONLY)
            view = maps.view(fd, os.fstat(fd), writable=False)
            os.close(fd)
            self.assertEqual(bytes(view), bytes([n]) * size)
            view.release()
            # At most the bound, or one larger file alone.
            self.assertTrue(maps.bytes <= 10000 or len(maps.maps) == 1, (maps.bytes, len(maps.maps)))
        self.assertEqual(maps.bytes, 100)
        maps.clear()
        self.assertEqual((maps.bytes, len(maps.maps)), (0, 0))

    def test_shm_output_without_shm_dir_falls_back_to_inline(self):
        self.server.shm_dir = None
        batch = Batch(output="shm").item("a", [b"abc", b"def"])
        status, manifest, data = self.batch(batch.frame())
        self.assertEqual(status, 200)
        self.assertEqual(manifest["items"][0]["output"]["kind"], "inline")
        self.assertEqual(self.output(manifest["items"][0], data), b"abcdef")

    def test_item_failures_do_not_fail_the_batch(self):
        batch = Batch(self.shm).item("ok", [b"fine"]).item("bad", [b"fail now"]).item("after", [b"also fine"])
        batch.manifest["items"].append(
            {"id": "missing", "inputs": [{"from": "det", "kind": "shm", "path": "gone", "len": 3}]}
        )
        batch.item("short", [b"xyz"], kinds=["shm"])
        batch.manifest["items"][-1]["inputs"][0]["len"] = 2
        status, manifest, data = self.batch(batch.frame())
        self.assertEqual(status, 200)
        entries = {e["id"]: e for e in manifest["items"]}
        self.assertEqual(self.output(entries["ok"], data), b"fine")
        self.assertEqual(self.output(entries["after"], data), b"also fine")
        self.assertEqual(entries["bad"], {"id": "bad", "ok": False, "error": "ValueError: item refused"})
        self.assertFalse(entries["missing"]["ok"])
        self.assertIn("input 0", entries["missing"]["error"])
        self.assertIn("holds 3 bytes where 2 were expected", entries["short"]["error"])

    def test_handler_exception_fails_the_batch(self):
        batch = Batch().item("a", [b"good"]).item("b", [b"boom"])
        status, body, _ = self.batch(batch.frame())
        self.assertEqual(status, 500)
        self.assertEqual(body, {"error": "RuntimeError: boom"})
        # The connection still works.
        self.assertEqual(self.batch(Batch().item("a", [b"again"]).frame())[0], 200)

    def test_bad_frames_are_400(self):
        good = Batch().item("a", [b"abcd"])
        cases = {
            b"no newline at all": "no '\\n'",
            b"{not json\n": "not valid JSON",
            good.frame()[:-1]: "outside the 3-byte data region",
            encode_frame(dict(good.manifest, items=good.manifest["items"] * 2), [b"abcd"]): "duplicate item id",
            encode_frame({"stage": "det", "output": "gpu", "items": []}): "output must be",
            encode_frame(
                {"stage": "det", "output": "inline", "items": [{"id": "a", "inputs": [{"from": "x", "kind": "shm", "path": "../etc/passwd", "len": 1}]}]}
            ): "not a plain file name",
            encode_frame(
                {"stage": "det", "output": "shm", "items": [{"id": "a", "out": "..", "inputs": [{"from": "x", "kind": "inline", "offset": 0, "len": 0}]}]}
            ): "not a plain file name",
        }
        for frame, message in cases.items():
            status, body, _ = self.batch(frame)
            self.assertEqual(status, 400, frame[:80])
            self.assertIn(message, body["error"])
        status, _, body = self.conn.request("POST", "/batch", good.frame(), ctype="application/json")
        self.assertEqual(status, 400)
        self.assertIn("Content-Type", json.loads(body)["error"])


class WrongResultTest(ServerCase):
    handler = staticmethod(lambda items: [b"only one"])

    def test_wrong_number_of_outputs_is_500(self):
        status, body, _ = self.batch(Batch().item("a", [b"1"]).item("b", [b"2"]).frame())
        self.assertEqual(status, 500)
        self.assertIn("returned 1 outputs for 2 items", body["error"])

    def test_output_of_the_wrong_type_is_500(self):
        self.server.handler = lambda items: ["text, not bytes"]
        status, body, _ = self.batch(Batch().item("a", [b"1"]).frame())
        self.assertEqual(status, 500)
        self.assertIn("is a str, not bytes", body["error"])


class ReadyTest(unittest.TestCase):
    def test_ready_callable_gates_ready(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s.sock")
            state = {"ready": False}
            server = sluice_stage.make_server(concat_or_fail, path, ready=lambda: state["ready"])
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
            conn = Conn(path)
            try:
                self.assertEqual(conn.request("GET", "/ready")[0], 503)
                state["ready"] = True
                self.assertEqual(conn.request("GET", "/ready")[0], 200)
            finally:
                conn.close()
                server.shutdown()
                server.server_close()


class FrameTest(unittest.TestCase):
    def test_round_trip(self):
        manifest = {"items": [{"id": "a", "ok": True, "output": {"kind": "inline", "offset": 0, "len": 3}}]}
        frame = encode_frame(manifest, [b"abc"])
        self.assertEqual(frame, b'{"items":[{"id":"a","ok":true,"output":{"kind":"inline","offset":0,"len":3}}]}\nabc')
        back, data = decode_frame(frame, "response")
        self.assertEqual(back, manifest)
        self.assertEqual(bytes(data), b"abc")

    def test_newlines_in_strings_stay_escaped(self):
        manifest = {"items": [{"id": "a\nb", "ok": False, "error": "line1\nline2"}]}
        frame = encode_frame(manifest)
        self.assertEqual(frame.count(b"\n"), 1)
        self.assertEqual(decode_frame(frame, "response")[0], manifest)

    def test_response_rules(self):
        for item in [{"id": "a", "ok": True}, {"id": "a", "ok": False}, {"id": "a", "ok": "yes", "error": "x"}]:
            with self.assertRaises(FrameError):
                decode_frame(encode_frame({"items": [item]}), "response")
        with self.assertRaises(FrameError):
            decode_frame(encode_frame({"items": [{"id": "a", "ok": True, "output": {"kind": "inline", "offset": 2, "len": 2}}]}, [b"abc"]), "response")


def fake_handle(n):
    """A made-up 64-byte CUDA IPC handle (the helper never looks inside one)."""
    return (b"fake-%08d" % n).ljust(sluice_stage.HANDLE_LEN, b"\xab")


class FakeDevice:
    """A handler that keeps "device buffers" (host bytes under made-up handles) and records frees.

    Input b"dev..." -> a DeviceOutput of the input; b"bytes" -> plain bytes; b"fail" -> an item
    error; a DeviceInput -> its handle hex, length and device as text."""

    def __init__(self):
        self.next = 0
        self.live = {}
        self.freed = []
        self.seen = []

    def __call__(self, items):
        out = []
        for inputs in items:
            first = inputs[0]
            if isinstance(first, sluice_stage.DeviceInput):
                self.seen.append(first)
                out.append(("%s:%d:%d" % (first.handle.hex(), first.length, first.device)).encode())
            elif bytes(first[:3]) == b"dev":
                self.next += 1
                handle = fake_handle(self.next)
                self.live[handle] = bytes(first)
                out.append(sluice_stage.DeviceOutput(handle, len(first), lambda h=handle: self.free(h)))
            elif bytes(first) == b"fail":
                out.append(ValueError("refused"))
            else:
                out.append(bytes(first))
        return out

    def free(self, handle):
        del self.live[handle]
        self.freed.append(handle)


class DeviceHandoffTest(ServerCase):
    def setUp(self):
        self.device = FakeDevice()
        self.handler = self.device
        super().setUp()
        self.server.device = 3

    def ipc_batch(self, payloads, output="cuda-ipc", release=None):
        batch = Batch(self.shm, output=output)
        for n, p in enumerate(payloads):
            batch.item("i%d" % n, [p])
        if release is not None:
            batch.manifest["release"] = release
        return self.batch(batch.frame())

    def test_device_outputs_are_kept_until_released(self):
        status, manifest, data = self.ipc_batch([b"dev-one", b"bytes", b"dev-two", b"fail"])
        self.assertEqual(status, 200, manifest)
        a, b, c, d = manifest["items"]
        self.assertEqual(a["output"], {"kind": "cuda-ipc", "handle": fake_handle(1).hex(), "len": 7, "device": 3})
        self.assertEqual(c["output"]["handle"], fake_handle(2).hex())
        self.assertEqual(self.output(b, data), b"bytes")  # bytes answer inline in cuda-ipc mode
        self.assertEqual(b["output"]["kind"], "inline")
        self.assertFalse(d["ok"])
        self.assertEqual(len(self.server.releases), 2)
        self.assertEqual(self.device.freed, [])
        # A later batch carries the first release; it is freed before that batch runs.
        status, manifest, _ = self.ipc_batch([b"dev-three"], release=[a["output"]["handle"]])
        self.assertEqual(status, 200)
        self.assertEqual(self.device.freed, [fake_handle(1)])
        self.assertEqual(manifest["items"][0]["output"]["handle"], fake_handle(3).hex())
        # POST /release frees the rest; unknown handles are ignored with a note.
        body = json.dumps({"release": [c["output"]["handle"], fake_handle(99).hex()]}).encode()
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status, _, answer = self.conn.request("POST", "/release", body, "application/json")
        self.assertEqual(status, 200, answer)
        self.assertEqual(json.loads(answer), {"released": 2})
        self.assertIn("unknown CUDA IPC handle %s" % fake_handle(99).hex(), err.getvalue())
        self.assertEqual(self.device.freed, [fake_handle(1), fake_handle(2)])
        self.assertEqual(set(self.device.live), {fake_handle(3)})

    def test_device_output_outside_cuda_ipc_mode_fails_the_item_and_frees_it(self):
        for mode in ("inline", "shm"):
            status, manifest, data = self.ipc_batch([b"dev-x", b"bytes"], output=mode)
            self.assertEqual(status, 200)
            first, second = manifest["items"]
            self.assertFalse(first["ok"])
            self.assertIn("DeviceOutput", first["error"])
            self.assertIn(mode, first["error"])
            self.assertEqual(self.output(second, data), b"bytes")
        self.assertEqual(self.device.live, {})
        self.assertEqual(len(self.device.freed), 2)
        self.assertEqual(len(self.server.releases), 0)

    def test_a_handle_still_handed_out_is_refused(self):
        same = fake_handle(7)

        def twice(items):
            return [sluice_stage.DeviceOutput(same, 1, lambda: None) for _ in items]

        self.server.handler = twice
        status, manifest, _ = self.ipc_batch([b"a", b"b"])
        self.assertEqual(status, 200)
        first, second = manifest["items"]
        self.assertTrue(first["ok"])
        self.assertFalse(second["ok"])
        self.assertIn("still handed out", second["error"])
        # The Rust side accepts the answer: one item, one handle.
        decode_frame(encode_frame(manifest), "response")

    def test_device_inputs_reach_the_handler(self):
        handle = fake_handle(42).hex()
        batch = Batch(self.shm, output="inline")
        batch.manifest["items"].append(
            {"id": "a", "inputs": [{"from": "det", "kind": "cuda-ipc", "handle": handle, "len": 4096, "device": 1}]}
        )
        status, manifest, data = self.batch(batch.frame())
        self.assertEqual(status, 200, manifest)
        self.assertEqual(self.output(manifest["items"][0], data), ("%s:4096:1" % handle).encode())
        self.assertEqual(self.device.seen, [sluice_stage.DeviceInput(fake_handle(42), 4096, 1)])

    def test_a_wrong_result_frees_the_device_outputs_of_the_batch(self):
        def half_wrong(items):
            return [sluice_stage.DeviceOutput(fake_handle(1), 1, lambda: self.device.freed.append(1)), 42]

        self.server.handler = half_wrong
        status, body, _ = self.ipc_batch([b"a", b"b"])
        self.assertEqual(status, 500)
        self.assertIn("not bytes, a DeviceOutput", body["error"])
        self.assertEqual(self.device.freed, [1])
        self.assertEqual(len(self.server.releases), 0)

    def test_bad_handles_and_release_bodies_are_400(self):
        good = fake_handle(1).hex()
        bad_refs = [
            {"from": "p", "kind": "cuda-ipc", "handle": good[:-2], "len": 1, "device": 0},
            {"from": "p", "kind": "cuda-ipc", "handle": "zz" + good[2:], "len": 1, "device": 0},
            {"from": "p", "kind": "cuda-ipc", "handle": good, "len": 1},
            {"from": "p", "kind": "cuda-ipc", "handle": good, "len": 1, "device": -1},
        ]
        for ref in bad_refs:
            frame = encode_frame({"stage": "s", "output": "inline", "items": [{"id": "a", "inputs": [ref]}]})
            status, body, _ = self.batch(frame)
            self.assertEqual(status, 400, ref)
        for release in (good, [good, good], ["+1" + good[2:]], [good[:10]]):
            frame = encode_frame({"stage": "s", "output": "cuda-ipc", "items": [], "release": release})
            self.assertEqual(self.batch(frame)[0], 400, release)
        for body in (b"{", b"[]", b'{"release": "x"}', b'{"release": [], "more": 1}', b'{"release": ["ab"]}'):
            status, _, _ = self.conn.request("POST", "/release", body, "application/json")
            self.assertEqual(status, 400, body)

    def test_device_output_checks_its_arguments(self):
        with self.assertRaises(ValueError):
            sluice_stage.DeviceOutput(b"short", 1, lambda: None)
        with self.assertRaises(ValueError):
            sluice_stage.DeviceOutput(fake_handle(1), -1, lambda: None)
        with self.assertRaises(TypeError):
            sluice_stage.DeviceOutput(fake_handle(1), 1, None)

    def test_a_failing_release_is_reported_and_forgotten(self):
        table = sluice_stage._Releases()

        def boom():
            raise RuntimeError("driver says no")

        self.assertTrue(table.hold("aa", boom))
        self.assertFalse(table.hold("aa", boom))
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            table.release(["AA"])
        self.assertIn("driver says no", err.getvalue())
        self.assertEqual(len(table), 0)


class ScriptTest(unittest.TestCase):
    def test_script_serves_concat(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s.sock")
            env = dict(os.environ, SLUICE_SOCKET=path, SLUICE_SHM_DIR=d)
            proc = subprocess.Popen([sys.executable, os.path.join(HERE, "sluice_stage.py")], env=env)
            try:
                deadline = time.time() + 10
                while not os.path.exists(path) and time.time() < deadline:
                    time.sleep(0.02)
                conn = Conn(path)
                batch = Batch(d, output="shm").item("a", [b"left-", b"right"], kinds=["shm", "inline"])
                status, _, body = conn.request("POST", "/batch", batch.frame())
                conn.close()
                self.assertEqual(status, 200)
                manifest, _ = decode_frame(body, "response")
                self.assertEqual(manifest["items"][0]["output"], {"kind": "shm", "path": "out-a", "len": 10})
                with open(os.path.join(d, "out-a"), "rb") as f:
                    self.assertEqual(f.read(), b"left-right")
            finally:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    unittest.main()
