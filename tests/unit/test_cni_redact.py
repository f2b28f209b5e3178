"""The netconf redaction rule (cni.redact): secrets hidden at any depth, the rest kept."""

from __future__ import annotations

import json

import pytest

from cni.redact import REDACTED, netconf_for_log, redact, redact_string, secret_key

NETCONF = {
    "cniVersion": "1.0.0",
    "name": "net-a",
    "type": "sriov",
    "deviceID": "0000:3b:02.1",
    "vlan": 100,
    "args": {"cni": {"labels": {"team": "a"}}, "apiToken": "t0k"},
    "ipam": {
        "type": "whereabouts",
        "range": "10.0.0.0/24",
        "kubernetes": {"kubeconfig": "/etc/cni/whereabouts.kubeconfig"},
        "etcd_password": "hunter2",
        "tls": {"client_key": "-----BEGIN PRIVATE KEY-----\nMII...", "ca": "/etc/ca.pem"},
        "endpoints": ["https://admin:s3cr3t@etcd.example:2379/v3"],
        "headers": {"Authorization": "Bearer abcdefghijkl"},
        "routes": [{"dst": "0.0.0.0/0"}],
    },
    "runtimeConfig": {"mac": "02:00:00:00:00:01", "credentials": {"user": "u"}},
}


def test_secrets_are_hidden_and_everything_else_kept() -> None:
    out = redact(NETCONF)
    text = json.dumps(out)
    for secret in ("hunter2", "s3cr3t", "BEGIN PRIVATE", "abcdefghijkl", "t0k", "team"):
        assert secret not in text, secret
    assert out["args"] == REDACTED  # top-level args: whole
    assert out["ipam"]["etcd_password"] == REDACTED
    assert out["ipam"]["tls"]["client_key"] == REDACTED
    assert out["ipam"]["headers"]["Authorization"] == REDACTED
    assert out["runtimeConfig"]["credentials"] == REDACTED  # whole value, whatever its type
    assert out["ipam"]["endpoints"] == [f"https://{REDACTED}@etcd.example:2379/v3"]
    # what a log reader needs stays
    for key in ("cniVersion", "name", "type", "deviceID", "vlan"):
        assert out[key] == NETCONF[key]
    assert out["ipam"]["range"] == "10.0.0.0/24" and out["ipam"]["routes"] == [{"dst": "0.0.0.0/0"}]
    assert out["ipam"]["tls"]["ca"] == "/etc/ca.pem"
    assert out["runtimeConfig"]["mac"] == "02:00:00:00:00:01"
    assert NETCONF["ipam"]["etcd_password"] == "hunter2"  # a copy: the input is untouched


@pytest.mark.parametrize("key", ["password", "apiKey", "TOKEN", "clientSecret", "privateKey",
                                 "credentials", "Authorization", "ssh_key", "sessionCookie"])
def test_secret_key_names(key: str) -> None:
    assert secret_key(key)


@pytest.mark.parametrize("key", ["name", "deviceID", "vlan", "subnet", "routes", "dataDir",
                                 "master", "mtu", "type", "capabilities"])
def test_plain_key_names(key: str) -> None:
    assert not secret_key(key)


@pytest.mark.parametrize("value", [
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    "-----BEGIN CERTIFICATE-----\nabc",
    "Basic dXNlcjpwYXNzd29yZA==",
])
def test_secret_looking_strings(value: str) -> None:
    assert redact_string(value) == REDACTED


def test_args_below_the_top_level_is_an_ordinary_key() -> None:
    assert redact({"ipam": {"args": "x"}}) == {"ipam": {"args": "x"}}


def test_netconf_for_log_never_returns_raw_bytes() -> None:
    raw = json.dumps(NETCONF).encode()
    line = netconf_for_log(raw)
    assert "hunter2" not in line and json.loads(line)["name"] == "net-a"
    assert netconf_for_log(b'{"password": "hunter2"') == "<undecodable config, 22 bytes>"
