"""The ``sriov`` executable container runtimes run: a thin, stdlib-only forwarder.

It sends the CNI environment and stdin to the resident agent (``cni.agent``) over a unix
socket and prints the agent's answer, so a pod attach costs one Python start-up plus a round
trip instead of importing pyroute2. When no agent listens (socket missing or refused) it runs
the plugin in this process (``cni.main.run``). If the agent accepted the request but the
connection broke, it answers code 11 "try again" and never runs the request a second time.

Imports only ``sys`` and the C modules ``posix`` and ``_socket`` at module level (tested),
because every millisecond of start-up is paid twice per pod: the ``socket`` wrapper module
alone pulls in ``selectors``/``enum``/``collections`` (~8 ms), ``os`` costs ~1-1.5 ms
(``_collections_abc``, ``posixpath``) and ``from __future__`` ~0.15 ms; the agent path reads
the environment as bytes from ``posix.environ``. ``os`` is imported only on the standalone
and error paths.

Wire format (both directions, big-endian lengths):
  request:  u32 len + env as ``KEY=VALUE\\0`` pairs, u32 len + stdin bytes
  response: i32 exit status, u32 len + stderr bytes, u32 len + stdout bytes
"""

import _socket
import posix
import sys

TYPE_CHECKING = False  # avoids importing typing (start-up cost); mypy treats it as True

if TYPE_CHECKING:
    from _socket import socket as Socket
    from collections.abc import Mapping, Sequence

DEFAULT_SOCKET = "/run/sriov-k8s/cni-agent.sock"
SOCKET_ENV = "SRIOV_CNI_AGENT_SOCKET"
FORWARDED_ENV = ("PATH",)
_FORWARDED_ENV_BYTES = tuple(name.encode() for name in FORWARDED_ENV)
REPLY_TIMEOUT = 120.0
_NO_AGENT = frozenset({2, 111, 20})  # ENOENT, ECONNREFUSED, ENOTDIR


def encode_env(env: "Mapping[str, str] | Mapping[bytes, bytes]") -> bytes:
    """``CNI_*`` and ``PATH`` as ``KEY=VALUE\\0`` pairs (``str`` or ``bytes`` environments)."""
    if isinstance(next(iter(env), ""), bytes):  # posix.environ: no decoding round trip
        raw: Mapping[bytes, bytes] = env  # type: ignore[assignment]
        return b"\0".join(
            k + b"=" + v
            for k, v in raw.items()
            if k.startswith(b"CNI_") or k in _FORWARDED_ENV_BYTES
        )
    text: Mapping[str, str] = env  # type: ignore[assignment]
    items = (f"{k}={v}" for k, v in text.items() if k.startswith("CNI_") or k in FORWARDED_ENV)
    return "\0".join(items).encode("utf-8", "surrogateescape")


def decode_env(data: bytes) -> "dict[str, str]":
    env = {}
    for item in data.decode("utf-8", "surrogateescape").split("\0"):
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
    return env


def frame(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def recv_exact(sock: "Socket", size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed mid-message")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock: "Socket", limit: int = 64 << 20) -> bytes:
    size = int.from_bytes(recv_exact(sock, 4), "big")
    if size > limit:
        raise ConnectionError(f"frame of {size} bytes exceeds the limit")
    return recv_exact(sock, size)


class AgentUnavailable(Exception):
    """No agent listens on the socket: run in-process instead."""


def call_agent(
    path: str,
    env: "Mapping[str, str] | Mapping[bytes, bytes]",
    stdin: bytes,
    timeout: float = REPLY_TIMEOUT,
) -> "tuple[int, bytes, bytes]":
    """Forward one invocation; returns (exit status, stdout bytes, stderr bytes)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as e:
            if e.errno in _NO_AGENT:
                raise AgentUnavailable(str(e)) from None
            raise
        sock.sendall(frame(encode_env(env)) + frame(stdin))
        sock.shutdown(_socket.SHUT_WR)
        status = int.from_bytes(recv_exact(sock, 4), "big", signed=True)
        err = recv_frame(sock)
        out = recv_frame(sock)
        return status, out, err
    finally:
        sock.close()


def _try_again(stdin: bytes, reason: str,
               msg: str = "CNI agent connection failed; try again") -> str:
    import json  # error path only

    version = "1.1.0"
    try:
        obj = json.loads(stdin)
        if isinstance(obj, dict) and isinstance(obj.get("cniVersion"), str) and obj["cniVersion"]:
            version = obj["cniVersion"]
    except (ValueError, RecursionError):
        pass
    return (
        json.dumps(
            {
                "cniVersion": version,
                "code": 11,
                "msg": msg,
                "details": reason,
            }
        )
        + "\n"
    )


def main(site_dirs: "Sequence[str]" = ()) -> int:
    environ = posix.environ  # bytes -> bytes; os.environ would cost the import of os
    command = environ.get(b"CNI_COMMAND")
    try:
        stdin = b"" if command == b"VERSION" and sys.stdin.isatty() else sys.stdin.buffer.read()
    except OSError as e:
        details = str(e).replace("\\", "\\\\").replace('"', '\\"')
        sys.stdout.write(
            '{"cniVersion":"1.1.0","code":5,"msg":"error reading from stdin",'
            f'"details":"{details}"}}\n'
        )
        return 1
    path = (environ.get(SOCKET_ENV.encode()) or DEFAULT_SOCKET.encode()).decode(
        "utf-8", "surrogateescape"
    )
    if command:
        try:
            status, out, err = call_agent(path, environ, stdin)
        except AgentUnavailable:
            pass
        except (OSError, ConnectionError) as e:
            sys.stdout.write(_try_again(stdin, f"{path}: {e}"))
            return 1
        else:
            sys.stderr.buffer.write(err)
            sys.stderr.flush()
            sys.stdout.buffer.write(out)
            sys.stdout.flush()
            if sys.flags.isolated and sys.flags.no_site:
                # Started as the CNI executable (both launchers run python -IS): everything is
                # written, so skip the interpreter's teardown (~1-1.5 ms of every verb).
                posix._exit(status & 0xFF)
            return status
    import os  # standalone: the plugin needs os anyway

    return _standalone(os.environ, stdin, site_dirs)


def _standalone(env: "Mapping[str, str]", stdin: bytes, site_dirs: "Sequence[str]") -> int:
    # The launcher started us with -S: make the venv's packages importable now. Plain sys.path
    # entries, not site.addsitedir(): its .pth files (the editable-install finder, setuptools'
    # distutils hack) cost ~10 ms and are not needed, the launcher already put the repo first.
    sys.path.extend(d for d in site_dirs if d not in sys.path)
    try:
        from cni.main import main as main_no_command
        from cni.main import run
    except ImportError as e:
        # A self-contained shim on a node (hack/install-cni --self-contained): the plugin
        # lives only in the agent's image. No agent means "not ready yet", not a bad config,
        # so the runtime retries the pod sandbox.
        path = env.get(SOCKET_ENV) or DEFAULT_SOCKET
        sys.stdout.write(_try_again(stdin, f"no CNI agent at {path} and no in-process plugin ({e})",
                                    msg="sriov-k8s CNI agent is not running"))
        return 1

    if not env.get("CNI_COMMAND"):
        return main_no_command()
    return run(dict(env), stdin, sys.stdout, sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
