"""Per-request logging (cni.logging_setup) and the logFile rules (cni.log_file).

A request's ``logLevel`` is its own: concurrent requests in threads (as the agent serves them)
never see each other's records, and the process's level and handlers are what they were.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni import skel
from cni.log_file import LogFileRefused, inside, log_dirs_from, open_log_file
from cni.netconf import NetConf
from cni.protocol import CmdArgs

SECRET_A, SECRET_B = "hunter2-of-a", "hunter2-of-b"


class Overlapping:
    """Handlers that log at every level and wait for each other, so two requests overlap."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self.barrier = barrier

    def delete(self, args: CmdArgs, conf: NetConf) -> None:
        log = logging.getLogger("cni.plugin")
        self.barrier.wait(10)
        log.debug("debug line of %s", args.container_id)
        logging.getLogger("sriov.netlink").debug("sriov debug line of %s", args.container_id)
        log.info("info line of %s", args.container_id)
        self.barrier.wait(10)

    add = check = gc = status = None  # type: ignore[assignment]


@pytest.fixture
def process_log() -> Iterator[io.StringIO]:
    """The process's own log: a root handler at the process level INFO (like --log-level)."""
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def body(level: str, secret: str) -> bytes:
    return json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "sriov", "logLevel": level,
                       "ipam": {"type": "x", "password": secret}}).encode()


def dispatch(cid: str, stdin: bytes, handlers: object) -> str:
    env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": cid, "CNI_NETNS": "/run/netns/st-none",
           "CNI_IFNAME": "net1", "CNI_PATH": "/usr/lib/cni"}
    out, err = io.StringIO(), io.StringIO()
    assert skel.dispatch(env, stdin, out, err, handlers) == 0, out.getvalue()  # type: ignore[arg-type]
    return err.getvalue()


def test_a_debug_request_changes_nothing_for_others(process_log: io.StringIO) -> None:
    levels_before = {n: logging.getLogger(n).level for n in ("cni", "sriov")}
    handlers = Overlapping(threading.Barrier(2))
    errs: dict[str, str] = {}
    requests = (("ca", body("debug", SECRET_A)), ("cb", body("info", SECRET_B)))
    threads = [threading.Thread(target=lambda c=c, b=b: errs.__setitem__(
        c, dispatch(c, b, handlers))) for c, b in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # the debug request gets its own debug lines, its netconf redacted
    assert "debug line of ca" in errs["ca"] and "sriov debug line of ca" in errs["ca"]
    assert "netconf" in errs["ca"] and SECRET_A not in errs["ca"]
    # the other request: only its own records, at its own level
    assert "of ca" not in errs["cb"] and "DEBUG" not in errs["cb"]
    assert "info line of cb" in errs["cb"]
    assert SECRET_B not in errs["cb"]
    # the process's log: both requests at the process's level, no debug, no netconf
    text = process_log.getvalue()
    assert "info line of ca" in text and "info line of cb" in text
    assert "DEBUG" not in text and "netconf" not in text and "hunter2" not in text
    assert {n: logging.getLogger(n).level for n in ("cni", "sriov")} == levels_before
    # and afterwards, an info request produces no debug anywhere
    handlers = Overlapping(threading.Barrier(1))
    after = dispatch("cc", body("info", SECRET_B), handlers)
    assert "DEBUG" not in after and "DEBUG" not in process_log.getvalue()


def test_the_process_level_still_applies_when_it_is_debug(process_log: io.StringIO) -> None:
    logging.getLogger().setLevel(logging.DEBUG)  # the agent's --log-level debug
    err = dispatch("cd", body("info", SECRET_A), Overlapping(threading.Barrier(1)))
    assert "DEBUG" not in err
    text = process_log.getvalue()
    assert "debug line of cd" in text and "netconf" in text and SECRET_A not in text


# ------------------------------------------------------------------ logFile

def test_inside_is_by_path_component() -> None:
    assert inside("/var/log/x", ["/var/log"]) and inside("/var/log", ["/var/log"])
    assert not inside("/var/logs/x", ["/var/log"]) and not inside("/etc", ["/var/log", "/tmp"])


def test_log_dirs_setting() -> None:
    assert log_dirs_from(None) == (Path("/var/log"), Path("/tmp"))
    assert log_dirs_from("") == ()
    assert log_dirs_from("/a:relative:/b") == (Path("/a"), Path("/b"))


def test_a_file_in_an_allowed_dir_is_appended_0600(tmp_path: Path) -> None:
    target = tmp_path / "sriov.log"
    target.write_text("old\n")
    with open_log_file(str(target), [tmp_path]) as stream:
        stream.write("new\n")
    assert target.read_text() == "old\nnew\n"
    fresh = tmp_path / "fresh.log"
    open_log_file(str(fresh), [tmp_path]).close()
    assert fresh.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("case", ["outside", "missing-dir", "relative", "symlink", "fifo",
                                  "symlinked-dir", "dotdot", "disabled"])
def test_refused_log_files_touch_nothing(tmp_path: Path, case: str) -> None:
    allowed = tmp_path / "logs"
    allowed.mkdir()
    outside = tmp_path / "etc"
    outside.mkdir()
    victim = outside / "cron"
    victim.write_text("keep\n")
    path = {
        "outside": str(outside / "x.log"),
        "missing-dir": str(allowed / "new" / "x.log"),
        "relative": "x.log",
        "symlink": str(allowed / "link.log"),
        "fifo": str(allowed / "fifo"),
        "symlinked-dir": str(allowed / "dirlink" / "cron"),
        "dotdot": str(allowed / ".." / "etc" / "cron"),
        "disabled": str(allowed / "x.log"),
    }[case]
    (allowed / "link.log").symlink_to(victim)
    (allowed / "dirlink").symlink_to(outside)
    os.mkfifo(allowed / "fifo")
    before = sorted(p.name for p in allowed.iterdir())
    with pytest.raises(LogFileRefused):
        open_log_file(path, [] if case == "disabled" else [allowed])
    assert victim.read_text() == "keep\n"
    assert sorted(p.name for p in allowed.iterdir()) == before
    assert sorted(p.name for p in outside.iterdir()) == ["cron"]


def test_a_refused_log_file_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "x.log"
    stdin = json.dumps({"cniVersion": "1.0.0", "name": "n", "logFile": str(target)}).encode()

    class Ok:
        def delete(self, args: CmdArgs, conf: NetConf) -> None:
            return None

        add = check = gc = status = None  # type: ignore[assignment]

    err = dispatch("ce", stdin, Ok())
    assert "not logging to logFile" in err and "never created" in err
    assert not (tmp_path / "no").exists()
