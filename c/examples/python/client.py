"""A Python client of a shmlink server, through the C library and ctypes.

    cc -std=c99 -O2 -fPIC -shared -pthread -o libshmlink.so c/shmlink.c
    SHMLINK_LIB=./libshmlink.so python3 client.py NAME MESSAGE...

sends each MESSAGE as one message and prints the server's answer to it.
"""

import ctypes
import os
import sys

SHORT_BUFFER = -12


class Error(Exception):
    """A shmlink call failed: code is its negative result."""

    def __init__(self, code, what, detail):
        super().__init__(f"{what}: {detail}")
        self.code = code


def load(path=None):
    """The C library, with the signatures of the calls used here."""
    lib = ctypes.CDLL(path or os.environ.get("SHMLINK_LIB", "libshmlink.so"))
    conn = ctypes.c_void_p
    lib.shmlink_dial.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(conn)]
    lib.shmlink_send.argtypes = [conn, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    lib.shmlink_recv.argtypes = [conn, ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t), ctypes.c_int]
    lib.shmlink_close.argtypes = [conn]
    lib.shmlink_close.restype = None
    lib.shmlink_last_error.restype = ctypes.c_char_p
    return lib


class Link:
    """One link to a server; messages are bytes."""

    def __init__(self, lib, name, wait_ms=5000):
        self._lib = lib
        self._c = ctypes.c_void_p()
        self._check(lib.shmlink_dial(name.encode(), None, wait_ms, ctypes.byref(self._c)), "dial")
        self._buf = ctypes.create_string_buffer(64 << 10)

    def _check(self, r, what):
        if r != 0:
            raise Error(r, what, self._lib.shmlink_last_error().decode())

    def send(self, data, timeout_ms=-1):
        self._check(self._lib.shmlink_send(self._c, data, len(data), timeout_ms), "send")

    def recv(self, timeout_ms=-1):
        n = ctypes.c_size_t()
        while True:
            r = self._lib.shmlink_recv(self._c, self._buf, len(self._buf), ctypes.byref(n), timeout_ms)
            if r != SHORT_BUFFER:
                self._check(r, "recv")
                return self._buf.raw[: n.value]
            self._buf = ctypes.create_string_buffer(n.value)  # nothing was consumed: retry

    def close(self):
        if self._c:
            self._lib.shmlink_close(self._c)
            self._c = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    with Link(load(), sys.argv[1]) as link:
        for message in sys.argv[2:]:
            link.send(message.encode())
            print(link.recv().decode(), flush=True)


if __name__ == "__main__":
    main()
