"""Write a Sluice pipeline stage in Python: ``serve(handler)`` speaks the stage protocol.

This one file (standard library only, Python >= 3.9) owns the Python side of the Sluice stage
protocol. The worker starts a stage instance with ``SLUICE_SOCKET=<path>``, ``SLUICE_STAGE=<name>``,
``SLUICE_MAX_BATCH=<n>`` and, when the instance is co-located with neighbour stages,
``SLUICE_SHM_DIR=<directory on a shared tmpfs>``. The stage serves HTTP/1.1 on that Unix socket:

- ``GET /ready``  -> 200 ``ok`` (503 while the optional ``ready()`` callable returns false);
- ``POST /release`` with ``{"release": [hex handle, ...]}`` -> 200: frees device outputs handed out
  through CUDA IPC that no consumer needs any more (see below);
- ``POST /batch`` with a batch frame (``Content-Type: application/x-sluice-batch``): one line of JSON
  (the manifest), ``\\n``, then the data region (the concatenated inline payloads). The helper maps
  shared-memory inputs read-only (zero-copy), calls ``handler(items)`` once for the batch, writes
  each output into ``SLUICE_SHM_DIR/<out>`` when the request asks for shm output (and the directory
  is set; the file may exist already, a recycled segment: it is overwritten and truncated to the
  output's length), else inline, and answers a batch frame with one entry per item, in order;
- a frame that cannot be decoded -> 400 ``{"error": ...}``; an exception in the handler (or a
  handler result of the wrong shape) -> 500; other paths -> 404; bodies over 1 GiB -> 413.

``handler(items)`` gets a list with one entry per batch item; each entry is a list of ``memoryview``
(one per input, in the order of the stage's predecessors) — or, for an input handed over through CUDA
IPC, a ``DeviceInput``. It returns a list of the same length whose entries are the outputs (``bytes``,
``bytearray``, ``memoryview``, or a ``DeviceOutput``) or an ``Exception`` instance (that item failed; the
others go on). Input views are valid only during the call: copy what you keep (the
worker recycles a segment's file once its consumers are done, so a view kept past the call would
later show another item's bytes). An
item whose shm input cannot be mapped fails on its own, without reaching the handler.

CUDA IPC hand-off (a stage on a GPU, whose consumer runs on the same GPU). When the worker asks for
``"output":"cuda-ipc"``, an item may return ``DeviceOutput(handle, length, release)``: ``handle`` the
64-byte ``cudaIpcMemHandle_t`` of a device allocation the stage keeps, ``length`` the bytes of it that
are the output, ``release`` a callable that frees it. The helper answers the hex handle and keeps
``release`` until the worker says no consumer needs the buffer any more (a ``"release"`` list in a
later request, or ``POST /release``); then it calls it. A ``DeviceOutput`` in any other mode fails
that item (the helper never copies device memory to the host itself); bytes outputs are always fine.
An input handed over this way arrives as ``DeviceInput(handle, length, device)``, to be opened with
the stage's own framework and closed before the handler returns. With CuPy, say::

    import cupy

    def handler(items):
        outs = []
        for inputs in items:
            src = inputs[0]  # a DeviceInput
            ptr = cupy.cuda.runtime.ipcOpenMemHandle(src.handle)
            try:
                mem = cupy.cuda.UnownedMemory(ptr, src.length, None)
                x = cupy.ndarray((src.length,), cupy.uint8, cupy.cuda.MemoryPointer(mem, 0))
                y = cupy.cuda.Memory(src.length)  # cudaMalloc: an allocation of its own
                out = cupy.ndarray((src.length,), cupy.uint8, cupy.cuda.MemoryPointer(y, 0))
                out[...] = x[::-1]  # the stage's work
            finally:
                cupy.cuda.runtime.ipcCloseMemHandle(ptr)
            keep = {"y": y}  # alive until the worker releases it
            outs.append(DeviceOutput(cupy.cuda.runtime.ipcGetMemHandle(y.ptr), src.length, keep.clear))
        return outs

(``ipcGetMemHandle`` names a whole allocation and reads start at its base: export buffers allocated
for the purpose, not slices of a memory pool's larger blocks.)

Usage::

    from sluice_stage import serve

    def handler(items):
        return [bytes(inputs[0]).upper() for inputs in items]

    if __name__ == "__main__":
        serve(handler)

Run alone (``SLUICE_SOCKET=/tmp/s.sock python3 sluice_stage.py``) it serves a stage whose output is
the concatenation of its inputs.
"""

import collections
import http.server
import json
import mmap
import os
import socketserver
import sys
import threading
import traceback

__all__ = [
    "serve",
    "DeviceInput",
    "DeviceOutput",
    "make_server",
    "encode_frame",
    "decode_frame",
    "parse_release",
    "FrameError",
    "CONTENT_TYPE",
    "MAX_BODY",
    "SOCKET_ENV",
    "SHM_DIR_ENV",
]

SOCKET_ENV = "SLUICE_SOCKET"
SHM_DIR_ENV = "SLUICE_SHM_DIR"
GPU_INDEX_ENV = "SLUICE_GPU_INDEX"
HANDLE_LEN = 64  # bytes of a CUDA IPC memory handle
_HEX = frozenset("0123456789abcdefABCDEF")
CONTENT_TYPE = "application/x-sluice-batch"
MAX_BODY = 1 << 30
MAP_CACHE_BYTES = 256 << 20  # segment mappings kept per stage process
MAX_NAME = 255

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class FrameError(ValueError):
    """A batch frame (or a reference in it) that breaks the protocol."""


class DeviceOutput:
    """An item's output left in device memory and handed over as a CUDA IPC handle.

    ``handle``: the 64-byte IPC handle of the allocation (bytes-like); ``length``: how many bytes from
    its start are the output; ``release``: called (with no argument) once the worker no longer needs
    the allocation, to free it. The stage must keep the allocation alive until then.
    """

    __slots__ = ("handle", "length", "release")

    def __init__(self, handle, length, release):
        handle = bytes(handle)
        if len(handle) != HANDLE_LEN:
            raise ValueError("a CUDA IPC handle has %d bytes, not %d" % (HANDLE_LEN, len(handle)))
        if not _is_count(length):
            raise ValueError("length must be a non-negative integer")
        if not callable(release):
            raise TypeError("release must be callable")
        self.handle = handle
        self.length = length
        self.release = release

    def __repr__(self):
        return "DeviceOutput(handle=%s, length=%d)" % (self.handle.hex(), self.length)


class DeviceInput:
    """An input handed over as a CUDA IPC handle: ``handle`` (64 bytes), ``length`` (bytes of the
    allocation that are the payload) and ``device`` (the GPU as the worker numbers them; inside the
    stage's sandbox its GPU is the current device). Open it with the stage's framework and close it
    before the handler returns: the producer frees the allocation once the batch is answered."""

    __slots__ = ("handle", "length", "device")

    def __init__(self, handle, length, device):
        self.handle = bytes(handle)
        self.length = length
        self.device = device

    def __eq__(self, other):
        return isinstance(other, DeviceInput) and (self.handle, self.length, self.device) == (
            other.handle,
            other.length,
            other.device,
        )

    def __repr__(self):
        return "DeviceInput(handle=%s, length=%d, device=%d)" % (self.handle.hex(), self.length, self.device)


class _Releases:
    """The release callables of the device outputs this process handed out, by hex handle."""

    def __init__(self):
        self.lock = threading.Lock()
        self.held = {}

    def hold(self, hex_handle, release):
        """Keeps ``release`` for ``hex_handle``; false if that handle is already held."""
        with self.lock:
            if hex_handle in self.held:
                return False
            self.held[hex_handle] = release
            return True

    def release(self, hex_handles):
        """Calls and forgets the release of each handle (unknown ones get a note on stderr)."""
        for hex_handle in hex_handles:
            with self.lock:
                release = self.held.pop(hex_handle.lower(), None)
            if release is None:
                print("sluice_stage: release of unknown CUDA IPC handle %s ignored" % hex_handle, file=sys.stderr)
                continue
            _call_release(release)

    def __len__(self):
        with self.lock:
            return len(self.held)


def _call_release(release):
    try:
        release()
    except Exception:  # noqa: BLE001 - a failing release must not fail the batch or the server
        traceback.print_exc(file=sys.stderr)


_RELEASES = _Releases()


def encode_frame(manifest, chunks=()):
    """Returns manifest line + ``\\n`` + the concatenated ``chunks`` (bytes-like) as one ``bytes``."""
    line = json.dumps(manifest, separators=(",", ":")).encode()
    return b"".join([line, b"\n", *chunks])


def decode_frame(body, kind="request"):
    """Splits and validates a frame; returns ``(manifest, data)`` with ``data`` a memoryview.

    ``kind`` is ``"request"`` (a ``POST /batch`` body) or ``"response"``. Raises ``FrameError``.
    """
    if not isinstance(body, (bytes, bytearray)):
        body = bytes(body)
    newline = body.find(b"\n")
    if newline < 0:
        raise FrameError("batch frame has no '\\n' after the manifest line")
    try:
        manifest = json.loads(body[:newline])
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise FrameError("batch manifest is not valid JSON: %s" % e) from None
    data = memoryview(body)[newline + 1 :]
    if kind == "request":
        _check_request(manifest, len(data))
    elif kind == "response":
        _check_response(manifest, len(data))
    else:
        raise ValueError("kind must be 'request' or 'response'")
    return manifest, data


def _fail(message):
    raise FrameError(message)


def _is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < (1 << 64)


def _check_name(at, field, name):
    if not isinstance(name, str):
        _fail("%s: %s must be a string" % (at, field))
    why = None
    if not name:
        why = "it is empty"
    elif len(name.encode("utf-8", "surrogatepass")) > MAX_NAME:
        why = "it is longer than %d bytes" % MAX_NAME
    elif name in (".", ".."):
        why = "'.' and '..' are not file names"
    elif "/" in name:
        why = "it contains '/'"
    elif "\0" in name:
        why = "it contains a NUL byte"
    if why:
        _fail("%s: %s %s is not a plain file name: %s" % (at, field, json.dumps(name), why))


def _check_handle(at, handle):
    if not isinstance(handle, str) or len(handle) != 2 * HANDLE_LEN or not _HEX.issuperset(handle):
        _fail("%s: a CUDA IPC handle must be %d hex digits" % (at, 2 * HANDLE_LEN))


def _check_ref(at, ref, data_len):
    if not isinstance(ref, dict):
        _fail("%s must be an object" % at)
    kind = ref.get("kind")
    if not _is_count(ref.get("len")):
        _fail("%s: len must be a non-negative integer" % at)
    if kind == "inline":
        offset = ref.get("offset")
        if not _is_count(offset):
            _fail("%s: offset must be a non-negative integer" % at)
        if offset + ref["len"] > data_len:
            _fail(
                "%s: inline range %d+%d is outside the %d-byte data region"
                % (at, offset, ref["len"], data_len)
            )
    elif kind == "shm":
        _check_name(at, "path", ref.get("path"))
    elif kind == "cuda-ipc":
        _check_handle(at, ref.get("handle"))
        if not _is_count(ref.get("device")) or ref["device"] >= (1 << 32):
            _fail("%s: device must be a non-negative integer" % at)
    else:
        _fail("%s: kind must be \"inline\", \"shm\" or \"cuda-ipc\", not %s" % (at, json.dumps(kind)))


def _check_ids(items):
    if not isinstance(items, list):
        _fail("items must be a list")
    seen = set()
    for item in items:
        if not isinstance(item, dict):
            _fail("every item must be an object")
        ident = item.get("id")
        if not isinstance(ident, str) or not ident:
            _fail("every item needs a non-empty string id")
        if ident in seen:
            _fail("duplicate item id %s in the batch" % json.dumps(ident))
        seen.add(ident)


def _check_request(m, data_len):
    if not isinstance(m, dict):
        _fail("batch manifest must be a JSON object")
    if not isinstance(m.get("stage"), str) or not m["stage"]:
        _fail("request names no stage")
    output = m.get("output")
    if output not in ("shm", "inline", "cuda-ipc"):
        _fail("output must be \"shm\", \"inline\" or \"cuda-ipc\", not %s" % json.dumps(output))
    _check_release(m.get("release", []))
    items = m.get("items")
    _check_ids(items)
    outs = set()
    for item in items:
        at = "item %s" % json.dumps(item["id"])
        out = item.get("out")
        if output == "shm" and out is None:
            _fail("%s: output is \"shm\" but the item has no \"out\" file name" % at)
        if output != "inline" and out is not None:
            _check_name(at, "out", out)
            if out in outs:
                _fail("%s: output file %s is named by two items" % (at, json.dumps(out)))
            outs.add(out)
        elif out is not None:
            _fail("%s: output is \"inline\" but the item names an \"out\" file" % at)
        inputs = item.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            _fail("%s has no inputs" % at)
        for i, ref in enumerate(inputs):
            at_input = "%s input %d" % (at, i)
            if not isinstance(ref, dict) or not isinstance(ref.get("from"), str) or not ref["from"]:
                _fail("%s names no producer" % at_input)
            _check_ref(at_input, ref, data_len)


def _check_release(handles):
    if not isinstance(handles, list):
        _fail("release must be a list of CUDA IPC handles")
    for handle in handles:
        _check_handle("release", handle)
    if len(set(h.lower() for h in handles)) != len(handles):
        _fail("a CUDA IPC handle is released twice")


def _check_response(m, data_len):
    if not isinstance(m, dict):
        _fail("batch manifest must be a JSON object")
    items = m.get("items")
    _check_ids(items)
    for item in items:
        at = "response item %s" % json.dumps(item["id"])
        if item.get("ok") is True and "output" in item and "error" not in item:
            _check_ref(at + " output", item["output"], data_len)
        elif item.get("ok") is False and isinstance(item.get("error"), str) and "output" not in item:
            pass
        else:
            _fail("%s: needs \"ok\":true with an \"output\" or \"ok\":false with an \"error\"" % at)


class _MapCache:
    """Mappings of segment files kept from one batch to the next, keyed by (device, inode).

    The worker recycles a released segment's file under a new name, so a stage meets the same few
    files again and again; keeping their mappings saves mapping and unmapping them (kernel work per
    4 KiB page) at every batch: a shm output is then one copy into memory already mapped and a shm
    input plain loads. At most ``max_bytes`` (one larger file aside) and ``MAX_MAPS`` files; the
    least recently used go first, and before them the mappings of files deleted since (which would
    otherwise keep the files' memory alive). Thread-safe: the server runs one thread per connection.
    """

    MAX_MAPS = 128

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.lock = threading.Lock()
        self.maps = collections.OrderedDict()  # (dev, ino, writable) -> (mmap, fd, size)
        self.bytes = 0

    def view(self, fd, st, writable):
        """A memoryview of the first ``st.st_size`` bytes of the file open as ``fd`` (whose stat is
        ``st``), writable or not; release it when done."""
        key = (st.st_dev, st.st_ino, writable)
        with self.lock:
            entry = self.maps.get(key)
            if entry is not None and entry[2] < st.st_size:
                self._drop(key)
                entry = None
            if entry is None:
                self._make_room(st.st_size)
                prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
                mm = mmap.mmap(fd, st.st_size, flags=mmap.MAP_SHARED, prot=prot)
                entry = (mm, os.dup(fd), st.st_size)
                self.maps[key] = entry
                self.bytes += st.st_size
            self.maps.move_to_end(key)
            # Exported under the lock: a mapping with a view alive is never closed under it.
            return memoryview(entry[0])[: st.st_size]

    def clear(self):
        with self.lock:
            for key in list(self.maps):
                self._drop(key)

    def _make_room(self, size):
        dead = [k for k, (_, fd, _) in self.maps.items() if os.fstat(fd).st_nlink == 0]
        for key in dead:
            self._drop(key)
        while self.maps and (self.bytes + size > self.max_bytes or len(self.maps) >= self.MAX_MAPS):
            self._drop(next(iter(self.maps)))

    def _drop(self, key):
        mm, fd, size = self.maps.pop(key)
        self.bytes -= size
        os.close(fd)
        try:
            mm.close()
        except BufferError:
            pass  # a handler still holds a view: the mapping goes with its last reference


_MAPS = _MapCache(MAP_CACHE_BYTES)


def _map_input(shm_dir, ref, maps):
    """A read-only, zero-copy view of a shm input (a slice of a kept mapping); release it after use."""
    if shm_dir is None:
        raise FrameError("shm input %s but %s is not set" % (json.dumps(ref["path"]), SHM_DIR_ENV))
    path = os.path.join(shm_dir, ref["path"])
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if st.st_size != ref["len"]:
            raise FrameError(
                "segment %s holds %d bytes where %d were expected" % (json.dumps(ref["path"]), st.st_size, ref["len"])
            )
        if st.st_size == 0:
            return memoryview(b"")
        return maps.view(fd, st, writable=False)
    finally:
        os.close(fd)


def _write_segment(shm_dir, name, view, maps):
    """Writes ``view`` (a byte memoryview) as ``shm_dir/name``: open (creating it when missing),
    truncate to ``len(view)``, copy the bytes in through a kept mapping, close.

    The file may already exist: the worker recycles the files of released segments, and
    overwriting their pages is what makes the hand-off cheap (``O_TRUNC`` would free them and make
    the kernel zero fresh ones). Truncating to the new length first drops the tail of a longer
    earlier output, so no stale byte stays readable, and sizes the file for the copy.
    """
    fd = os.open(os.path.join(shm_dir, name), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        os.ftruncate(fd, len(view))
        if len(view):
            target = maps.view(fd, os.fstat(fd), writable=True)
            try:
                target[:] = view
            finally:
                target.release()
    finally:
        os.close(fd)


def _as_bytes_view(out):
    view = memoryview(out)
    if not view.contiguous:
        raise TypeError("handler output must be a contiguous buffer")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _error_message(e):
    return "%s: %s" % (type(e).__name__, e)


def run_batch(handler, manifest, data, shm_dir, maps=None, releases=None, device=0):
    """Runs one decoded batch; returns ``(response manifest, list of inline chunks)``.

    ``maps`` keeps segment mappings between batches (default: this process's cache); ``releases``
    holds the release callables of device outputs handed out (default: this process's table), and
    the manifest's ``"release"`` handles are freed through it before the handler runs; ``device`` is
    the GPU index answered with CUDA IPC outputs (``serve`` passes ``$SLUICE_GPU_INDEX``). Raises
    what the handler raises, and ``TypeError`` for a handler result of the wrong shape.
    """
    maps = _MAPS if maps is None else maps
    releases = _RELEASES if releases is None else releases
    releases.release(manifest.get("release", []))
    items = manifest["items"]
    results = [None] * len(items)  # an error message (str) for items that failed before the handler
    views = []
    try:
        for i, item in enumerate(items):
            inputs = []
            try:
                for n, ref in enumerate(item["inputs"]):
                    if ref["kind"] == "inline":
                        inputs.append(data[ref["offset"] : ref["offset"] + ref["len"]])
                    elif ref["kind"] == "cuda-ipc":
                        inputs.append(DeviceInput(bytes.fromhex(ref["handle"]), ref["len"], ref["device"]))
                    else:
                        try:
                            view = _map_input(shm_dir, ref, maps)
                        except (OSError, ValueError) as e:
                            raise FrameError("input %d: %s" % (n, e)) from None
                        inputs.append(view)
                        views.append(view)
            except FrameError as e:
                results[i] = str(e)
                continue
            results[i] = inputs
        ready = [i for i, r in enumerate(results) if isinstance(r, list)]
        outputs = handler([results[i] for i in ready]) if ready else []
        if not isinstance(outputs, (list, tuple)):
            raise TypeError("handler must return a list, not a %s" % type(outputs).__name__)
        if len(outputs) != len(ready):
            raise TypeError("handler returned %d outputs for %d items" % (len(outputs), len(ready)))
        bad = [
            (i, out)
            for i, out in zip(ready, outputs)
            if not isinstance(out, (Exception, bytes, bytearray, memoryview, DeviceOutput))
        ]
        if bad:
            for out in outputs:  # none of them is handed out
                if isinstance(out, DeviceOutput):
                    _call_release(out.release)
            i, out = bad[0]
            raise TypeError(
                "handler output for item %d is a %s, not bytes, a DeviceOutput or an Exception" % (i, type(out).__name__)
            )
        for i, out in zip(ready, outputs):
            if isinstance(out, Exception):
                results[i] = _error_message(out)
            elif isinstance(out, DeviceOutput):
                results[i] = out
            else:
                results[i] = _as_bytes_view(out)
    finally:
        for view in views:
            try:
                view.release()
            except BufferError:
                pass  # exported by the handler (numpy, say): released with its last user
    mode = manifest["output"]
    answer = []
    chunks = []
    offset = 0
    for item, result in zip(items, results):
        if isinstance(result, str):
            answer.append({"id": item["id"], "ok": False, "error": result})
            continue
        if isinstance(result, DeviceOutput):
            hex_handle = result.handle.hex()
            if mode != "cuda-ipc":
                _call_release(result.release)
                error = "the handler returned a DeviceOutput, but the worker asked for %s output (copy it to host bytes)" % mode
            elif not releases.hold(hex_handle, result.release):
                error = "the handler returned CUDA IPC handle %s, which is still handed out" % hex_handle
            else:
                output = {"kind": "cuda-ipc", "handle": hex_handle, "len": result.length, "device": device}
                answer.append({"id": item["id"], "ok": True, "output": output})
                continue
            answer.append({"id": item["id"], "ok": False, "error": error})
            continue
        if mode != "inline" and item.get("out") is not None and shm_dir is not None:
            try:
                _write_segment(shm_dir, item["out"], result, maps)
            except OSError as e:
                answer.append({"id": item["id"], "ok": False, "error": "writing output: %s" % e})
                continue
            output = {"kind": "shm", "path": item["out"], "len": len(result)}
        else:
            output = {"kind": "inline", "offset": offset, "len": len(result)}
            chunks.append(result)
            offset += len(result)
        answer.append({"id": item["id"], "ok": True, "output": output})
    return {"items": answer}, chunks


def parse_release(body):
    """The handles of a ``POST /release`` body (``{"release": [hex, ...]}``). Raises ``FrameError``."""
    try:
        m = json.loads(body)
    except ValueError as e:
        raise FrameError("release body is not valid JSON: %s" % e) from None
    if not isinstance(m, dict) or set(m) != {"release"}:
        _fail("release body must be {\"release\": [...]}")
    _check_release(m["release"])
    return m["release"]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """One thread per connection (the worker keeps its connections alive)."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, path, handler, ready, shm_dir, device):
        self.handler = handler
        self.ready = ready
        self.shm_dir = shm_dir
        self.device = device
        self.releases = _Releases()
        super().__init__(path, _RequestHandler)


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sluice-stage"

    def address_string(self):
        return "unix"  # Unix-socket peers have no address

    def log_message(self, format, *args):  # noqa: A002 - base-class signature
        pass

    def _reply(self, status, chunks, content_type="application/json"):
        """Writes the head and the first chunk in one write, then the (large) rest as they are."""
        conn = b"close" if self.close_connection else b"keep-alive"
        length = sum(len(c) for c in chunks)
        head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n" % (
            status,
            _REASONS.get(status, "Unknown").encode(),
            content_type.encode(),
            length,
            conn,
        )
        first = bytes(chunks[0]) if chunks else b""
        self.wfile.write(head + first)
        for chunk in chunks[1:]:
            self.wfile.write(chunk)

    def _error(self, status, message, close=False):
        if close:
            self.close_connection = True
        self._reply(status, [json.dumps({"error": message}).encode()])

    def send_error(self, code, message=None, explain=None):
        self.close_connection = True
        try:
            self._reply(code, [json.dumps({"error": message or _REASONS.get(code, "error")}).encode()])
        except OSError:
            pass

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/ready":
            ready = self.server.ready
            try:
                ok = ready is None or ready()
            except Exception as e:  # noqa: BLE001 - a failing check means not ready
                return self._error(503, "not ready: %s" % _error_message(e))
            if ok:
                self._reply(200, [b"ok"], "text/plain")
            else:
                self._error(503, "not ready")
        elif path == "/batch":
            self._error(405, "method not allowed")
        else:
            self._error(404, "not found")

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        if self.headers.get("Transfer-Encoding") is not None:
            return self._error(400, "Transfer-Encoding (chunked) is not supported", close=True)
        lengths = self.headers.get_all("Content-Length") or ["0"]
        raw = lengths[0].strip()
        if len(set(v.strip() for v in lengths)) != 1 or not raw.isdigit() or not raw.isascii():
            return self._error(400, "bad Content-Length", close=True)
        length = int(raw)
        if length > MAX_BODY:
            return self._error(413, "request body over 1 GiB", close=True)
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            self.close_connection = True
            return
        if path == "/ready":
            return self._error(405, "method not allowed")
        if path == "/release":
            return self._release(body)
        if path != "/batch":
            return self._error(404, "not found")
        self._batch(body)

    def _release(self, body):
        try:
            handles = parse_release(body)
        except FrameError as e:
            return self._error(400, str(e))
        self.server.releases.release(handles)
        self._reply(200, [json.dumps({"released": len(handles)}).encode()])

    def _batch(self, body):
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip()
        if ctype != CONTENT_TYPE:
            return self._error(400, "Content-Type must be %s, not %s" % (CONTENT_TYPE, json.dumps(ctype)))
        try:
            manifest, data = decode_frame(body)
        except FrameError as e:
            return self._error(400, str(e))
        try:
            answer, chunks = run_batch(
                self.server.handler,
                manifest,
                data,
                self.server.shm_dir,
                releases=self.server.releases,
                device=self.server.device,
            )
        except Exception as e:  # noqa: BLE001 - every handler failure fails the batch
            traceback.print_exc(file=sys.stderr)
            return self._error(500, _error_message(e))
        line = json.dumps(answer, separators=(",", ":")).encode()
        self._reply(200, [line + b"\n", *chunks], CONTENT_TYPE)


def make_server(handler, path, *, ready=None, shm_dir=None, device=0):
    """Binds ``path`` (removing a stale file there first) and returns the server, not yet serving.

    ``shm_dir`` is where shm inputs and outputs live (``None``: inline only); ``device`` is the GPU
    index answered with CUDA IPC outputs. The server's ``releases`` table holds the release
    callables of the device outputs it handed out. Call ``serve_forever()`` on it (and
    ``shutdown()`` / ``server_close()`` to stop, as in tests).
    """
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return _Server(path, handler, ready, shm_dir, device)


def serve(handler, *, ready=None, path=None):
    """Serves ``handler`` on ``path`` (default ``$SLUICE_SOCKET``) until the process is killed.

    ``ready``, if given, is called on each ``GET /ready``: the stage takes work once it returns true
    (load models in a background thread and flip a flag, say). Shared memory is ``$SLUICE_SHM_DIR``.
    """
    path = path or os.environ.get(SOCKET_ENV)
    if not path:
        sys.exit("%s is not set: this program is meant to be started by a Sluice worker" % SOCKET_ENV)
    try:
        device = int(os.environ.get(GPU_INDEX_ENV) or 0)
    except ValueError:
        sys.exit("%s must be a GPU index, not %r" % (GPU_INDEX_ENV, os.environ[GPU_INDEX_ENV]))
    server = make_server(handler, path, ready=ready, shm_dir=os.environ.get(SHM_DIR_ENV) or None, device=device)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        _MAPS.clear()


def _concat(items):
    return [b"".join(inputs) for inputs in items]


if __name__ == "__main__":
    serve(_concat)
