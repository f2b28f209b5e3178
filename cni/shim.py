"""The Python CNI shim (installed as ``sriov-py``; the native ``sriov`` execs it for standalone
mode): a thin, stdlib-only forwarder.

It sends the CNI environment and stdin to the resident agent (``cni.agent``) over a unix
socket and prints the agent's answer, so a pod attach costs one Python start-up plus a round
trip instead of importing pyroute2. It talks only to an agent running as root (or
``$SRIOV_CNI_AGENT_UID``) whose socket directory nobody else can write, and answers VERSION
itself. When no agent listens (socket missing or refused) it runs the plugin in this process
(``cni.main.run``). If the agent accepted the request but the connection broke, it answers
code 11 "try again" and never runs the request a second time.

Imports only ``sys`` and the C modules ``posix`` and ``_socket`` at module level (tested),
because every millisecond of start-up is paid twice per pod: the ``socket`` wrapper module
alone pulls in ``selectors``/``enum``/``collections`` (~8 ms), ``os`` costs ~1-1.5 ms
(``_collections_abc``, ``posixpath``) and ``from __future__`` ~0.15 ms; the agent path reads
the environment as bytes from ``posix.environ``. ``os`` is imported only on the standalone
and error paths.

Wire format and rules: docs/shim-protocol.md (the native shim, shim/sriov-shim.c, speaks the same
protocol and must behave identically; tests/unit/test_shim_contract.py runs both).
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
AGENT_UID_ENV = "SRIOV_CNI_AGENT_UID"
TIMEOUT_ENV = "SRIOV_CNI_SHIM_TIMEOUT"
REPLY_TIMEOUT = 120.0
"""Whole round trip (connect, send, reply), not per socket operation."""
FRAME_LIMIT = 64 << 20
"""Largest env or stdin frame either side sends; a larger stdin is a permanent error (code 7)."""
SUPPORTED_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
"""= cni.protocol.SUPPORTED_VERSIONS (tested): the shim answers VERSION without the agent."""
CURRENT_VERSION = "1.1.0"
CODE_INVALID_ENV, CODE_IO, CODE_INVALID_CONFIG, CODE_TRY_AGAIN = 4, 5, 7, 11
CODE_UNTRUSTED_AGENT = 109  # = cni.errors.CniCode.UNTRUSTED_AGENT (tested)
_NO_AGENT = frozenset({2, 111, 20})  # ENOENT, ECONNREFUSED, ENOTDIR
_S_IWGRP_IWOTH = 0o022


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


def recv_frame(sock: "Socket", limit: int = FRAME_LIMIT) -> bytes:
    size = int.from_bytes(recv_exact(sock, 4), "big")
    if size > limit:
        raise ConnectionError(f"frame of {size} bytes exceeds the limit")
    return recv_exact(sock, size)


class AgentUnavailable(Exception):
    """No agent listens on the socket: run in-process instead."""


class EnvTooLarge(ValueError):
    """The forwarded environment exceeds FRAME_LIMIT: a permanent error (code 4)."""


class UntrustedAgent(Exception):
    """The socket is served by, or lives in a directory writable by, someone else."""


def socket_dir(path: str) -> str:
    head, sep, _ = path.rpartition("/")
    return head or ("/" if sep else ".")


def check_peer(sock: "Socket", path: str, agent_uid: "int | None") -> None:
    """The agent must run as root (or ``agent_uid``), in a directory it owns that nobody else
    may write to; raises :class:`UntrustedAgent`. ``SO_PEERCRED`` gives the credentials the
    listener had when it called listen(), which a non-root process cannot forge."""
    allowed = (0,) if agent_uid is None else (0, agent_uid)
    cred = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # struct ucred
    pid, uid = (int.from_bytes(cred[i:i + 4], sys.byteorder) for i in (0, 4))
    if uid not in allowed:
        raise UntrustedAgent(
            f"{path}: served by uid {uid} (pid {pid}), not root or the configured agent uid"
        )
    directory = socket_dir(path)
    st = posix.stat(directory)
    if st.st_uid not in allowed:
        raise UntrustedAgent(f"socket directory {directory} is owned by uid {st.st_uid}, "
                             "not root or the configured agent uid")
    if st.st_mode & _S_IWGRP_IWOTH:
        raise UntrustedAgent(f"socket directory {directory} is group- or world-writable "
                             f"(mode {st.st_mode & 0o7777:04o})")


def call_agent(
    path: str,
    env: "Mapping[str, str] | Mapping[bytes, bytes]",
    stdin: bytes,
    timeout: float = REPLY_TIMEOUT,
    agent_uid: "int | None" = None,
) -> "tuple[int, bytes, bytes]":
    """Forward one invocation; returns (exit status, stdout bytes, stderr bytes).

    Raises AgentUnavailable (nobody listens), UntrustedAgent, OSError/ConnectionError."""
    from time import monotonic  # C module, ~0.05 ms

    deadline = monotonic() + timeout
    env_frame = encode_env(env)
    if len(env_frame) > FRAME_LIMIT:
        raise EnvTooLarge(f"forwarded environment is larger than {FRAME_LIMIT} bytes")

    def left() -> float:
        remaining = deadline - monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no reply within {timeout:g}s")
        return remaining

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(left())
        try:
            sock.connect(path)
        except OSError as e:
            if e.errno in _NO_AGENT:
                raise AgentUnavailable(str(e)) from None
            raise
        check_peer(sock, path, agent_uid)
        sock.settimeout(left())
        sock.sendall(frame(env_frame) + frame(stdin))
        sock.shutdown(_socket.SHUT_WR)
        sock.settimeout(left())
        status = int.from_bytes(recv_exact(sock, 4), "big", signed=True)
        sock.settimeout(left())
        err = recv_frame(sock)
        sock.settimeout(left())
        out = recv_frame(sock)
        return status, out, err
    finally:
        sock.close()


def request_version(stdin: bytes) -> str:
    """cni.skel.request_version, stdlib only: the request's cniVersion or 1.1.0."""
    import json  # error and VERSION paths only

    try:
        obj = json.loads(stdin)
    except (ValueError, RecursionError):
        return CURRENT_VERSION
    version = obj.get("cniVersion") if isinstance(obj, dict) else None
    return version if isinstance(version, str) and version else CURRENT_VERSION


def error_json(stdin: bytes, code: int, msg: str, details: str) -> str:
    """One spec error document, as the native shim prints it."""
    import json

    doc = {"cniVersion": request_version(stdin), "code": code, "msg": msg, "details": details}
    return json.dumps(doc) + "\n"


def _try_again(stdin: bytes, reason: str,
               msg: str = "CNI agent connection failed; try again") -> str:
    return error_json(stdin, CODE_TRY_AGAIN, msg, reason)


def version_json(stdin: bytes) -> str:
    import json

    return json.dumps({"cniVersion": request_version(stdin),
                       "supportedVersions": list(SUPPORTED_VERSIONS)}) + "\n"


def _seconds(raw: bytes) -> "float | None":
    """``[0-9]+(.[0-9]+)?`` (the native shim's grammar) -> seconds > 0, else None."""
    whole, dot, frac = raw.partition(b".")
    ok = whole.isdigit() and (not dot or frac.isdigit())  # bytes.isdigit: ASCII only
    millis = int(float(raw) * 1000) if ok else 0  # the native shim counts whole milliseconds
    return millis / 1000 if millis > 0 else None


def _uid(raw: bytes) -> "int | None":
    value = int(raw) if raw.isdigit() else -1
    return value if 0 <= value <= 0xFFFFFFFE else None


def main(site_dirs: "Sequence[str]" = ()) -> int:
    environ = posix.environ  # bytes -> bytes; os.environ would cost the import of os
    command = environ.get(b"CNI_COMMAND")
    try:
        stdin = (b"" if command == b"VERSION" and sys.stdin.isatty()
                 else sys.stdin.buffer.read(FRAME_LIMIT + 1))
    except OSError as e:
        sys.stdout.write(error_json(b"", CODE_IO, "error reading from stdin", str(e)))
        return 1
    if len(stdin) > FRAME_LIMIT:
        sys.stdout.write(error_json(b"", CODE_INVALID_CONFIG, "network configuration too large",
                                    f"stdin is larger than {FRAME_LIMIT} bytes"))
        return 1
    path = (environ.get(SOCKET_ENV.encode()) or DEFAULT_SOCKET.encode()).decode(
        "utf-8", "surrogateescape"
    )
    raw_timeout = environ.get(TIMEOUT_ENV.encode())
    timeout = _seconds(raw_timeout) if raw_timeout else REPLY_TIMEOUT
    if timeout is None:
        sys.stdout.write(error_json(stdin, CODE_INVALID_ENV, f"invalid {TIMEOUT_ENV}",
                                    "expected seconds > 0, e.g. 120 or 0.5"))
        return 1
    raw_uid = environ.get(AGENT_UID_ENV.encode())
    agent_uid = _uid(raw_uid) if raw_uid else None
    if raw_uid and agent_uid is None:
        sys.stdout.write(error_json(stdin, CODE_INVALID_ENV, f"invalid {AGENT_UID_ENV}",
                                    "expected a decimal uid"))
        return 1
    if command == b"VERSION":  # answered here: runtimes ask before any agent runs
        sys.stdout.write(version_json(stdin))
        return 0
    if command:
        try:
            status, out, err = call_agent(path, environ, stdin, timeout, agent_uid)
        except AgentUnavailable:
            pass
        except UntrustedAgent as e:
            sys.stdout.write(error_json(stdin, CODE_UNTRUSTED_AGENT,
                                        "refusing an untrusted CNI agent socket", str(e)))
            return 1
        except EnvTooLarge as e:
            sys.stdout.write(error_json(stdin, CODE_INVALID_ENV, "environment too large", str(e)))
            return 1
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
        from cni.main import process_started, run
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
    import os

    # a late ADD is judged by when this process (the runtime's exec) started, not by now
    return run(dict(env), stdin, sys.stdout, sys.stderr, started=process_started(os.getpid()))


if __name__ == "__main__":
    raise SystemExit(main())
