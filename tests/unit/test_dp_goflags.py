"""sriov-device-plugin reads upstream's command lines (Go flag package + glog + entrypoint)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from deviceplugin import logsetup
from deviceplugin.cli import parse_args


def opts(*argv: str, log_root: Path = Path("/var/log")) -> logsetup.LogOptions:
    return logsetup.options_from(parse_args(list(argv)), log_root)


@pytest.mark.parametrize("argv", [
    ["--config-file=/etc/pcidp/node-1", "--resource-prefix=openshift.io"],
    ["-config-file=/etc/pcidp/node-1", "-resource-prefix", "openshift.io"],
    ["--config-file", "/etc/pcidp/node-1", "--resource-prefix", "openshift.io"],
    ["--config", "/etc/pcidp/node-1", "--resource-prefix=openshift.io"],  # ours still works
], ids=["double-dash-equals", "single-dash-mixed", "separate-values", "our-alias"])
def test_binary_flags_in_every_go_spelling(argv: list[str]) -> None:
    args = parse_args(argv)
    assert args.config == Path("/etc/pcidp/node-1") and args.resource_prefix == "openshift.io"


@pytest.mark.parametrize(("argv", "use_cdi"), [
    ([], False), (["--use-cdi"], True), (["-use-cdi"], True), (["--use-cdi=true"], True),
    (["--use-cdi=T"], True), (["--use-cdi=1"], True), (["--use-cdi=false"], False),
    (["--use-cdi", "--use-cdi=0"], False),  # Go: the last one wins
])
def test_bool_flags_as_go_parses_them(argv: list[str], use_cdi: bool) -> None:
    assert parse_args(argv).use_cdi is use_cdi


def test_go_bool_never_takes_a_separate_value(capsys: pytest.CaptureFixture[str]) -> None:
    # Go: "-use-cdi false" is -use-cdi followed by the first non-flag: parsing stops there
    args = parse_args(["--use-cdi", "false", "--resource-prefix=x.io"])
    assert args.use_cdi is True and args.resource_prefix == "intel.com"
    assert args.ignored_args == ("false", "--resource-prefix=x.io")


@pytest.mark.parametrize(("argv", "message"), [
    (["--use-cdi=maybe"], "invalid boolean value 'maybe' for -use-cdi"),
    (["--no-such-flag"], "flag provided but not defined: -no-such-flag"),
    (["---v=1"], "bad flag syntax: ---v=1"),
    (["--config-file"], "flag needs an argument: -config-file"),
    (["-v=x"], "invalid"),
    (["-stderrthreshold=LOUD"], "invalid"),
    (["-vmodule=foo"], "invalid"),
    (["--log-level=verbose"], "invalid"),
])
def test_flags_go_refuses_exit_2(argv: list[str], message: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "level"), [
    ([], logging.INFO), (["--log-level=10"], logging.INFO), (["--log-level=0"], logging.INFO),
    (["--log-level=11"], logging.DEBUG), (["-v", "4"], logging.INFO),
    (["-v=12"], logging.DEBUG), (["--log-level", "debug"], logging.DEBUG),
    (["--log-level=warning"], logging.WARNING), (["--log-level=ERROR"], logging.ERROR),
])
def test_log_level_names_and_glog_verbosity(argv: list[str], level: int) -> None:
    assert opts(*argv).level == level


def test_entrypoint_log_dir_writes_a_file_and_stderr(tmp_path: Path) -> None:
    o = opts("--log-dir=sriovdp", "--log-level=10", log_root=tmp_path)
    assert o.file == tmp_path / "sriovdp" / logsetup.LOG_FILE_NAME and o.also_to_stderr
    # the entrypoint builds "/var/log/$D": an absolute D stays under the root
    assert opts("--log-dir=/x", log_root=tmp_path).file == tmp_path / "x" / logsetup.LOG_FILE_NAME


def test_glog_file_flags(tmp_path: Path) -> None:
    o = opts("-log_dir", str(tmp_path), "-stderrthreshold=WARNING")
    assert o.file == tmp_path / logsetup.LOG_FILE_NAME
    assert not o.also_to_stderr and o.stderr_threshold == logging.WARNING
    assert opts("--log_file=/tmp/x.log", "--alsologtostderr").also_to_stderr
    assert opts("-logtostderr", "-log_dir=/tmp").to_stderr_only
    assert opts("-stderrthreshold=0").stderr_threshold == logging.INFO
    parse_args(["-vmodule=manager=4,server*=2", "-log_backtrace_at=main.go:10",
                "-log_link=/tmp", "-logbuflevel=-1"])  # accepted, no effect


def test_configure_writes_the_log_file(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logsetup.configure(opts("--log-dir=sriovdp", log_root=tmp_path))
        logging.getLogger("deviceplugin").warning("hello from the test")
        for handler in root.handlers:
            handler.flush()
        text = (tmp_path / "sriovdp" / logsetup.LOG_FILE_NAME).read_text()
        assert "msg=hello from the test" in text
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
