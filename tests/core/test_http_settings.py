"""``[http]``: off by default, loopback by default, and a reachable address only with TLS or behind a proxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from nua import settings
from nua.settings import SettingsError


def test_the_http_server_is_off_and_on_loopback_by_default() -> None:
    loaded = settings.load(environ={})
    assert not loaded.http.enabled
    assert loaded.http.address == "127.0.0.1"
    assert settings.load(environ={"NUA_HTTP_PORT": "8080"}).http.enabled


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[http]\nport = 8080\naddress = '0.0.0.0'\n", "[http] address '0.0.0.0' can be reached from other hosts"),
        ("[http]\nport = 70000\n", "[http] port must be from -1 to 65535"),
        ("[http]\ntls_cert = 'cert.pem'\ntls_key = '/k.pem'\n", "[http] tls_cert must be an absolute path, or empty"),
        ("[http]\ntls_cert = '/c.pem'\n", "[http] tls_cert and [http] tls_key go together"),
        ("[http]\nallowed_hosts = ['nua.example.org:443']\n", "[http] allowed_hosts must be a list of host names"),
        ("[http]\nmax_clients = 0\n", "[http] max_clients must be from 1"),
        ("[http]\nsession_s = 0.0\n", "[http] session_s must be a number of seconds above 0"),
    ],
)
def test_a_bad_http_setting_names_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "nua.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as raised:
        settings.load(config, environ={})
    assert message in str(raised.value)
    assert str(config) in str(raised.value)


def test_a_reachable_address_is_accepted_with_tls_or_behind_a_proxy(tmp_path: Path) -> None:
    base = {"NUA_HTTP_PORT": "8443", "NUA_HTTP_ADDRESS": "0.0.0.0"}  # noqa: S104 - the case under test
    tls = settings.load(environ={**base, "NUA_HTTP_TLS_CERT": "/etc/nua/c.pem", "NUA_HTTP_TLS_KEY": "/etc/nua/k.pem"})
    proxied = settings.load(environ={**base, "NUA_HTTP_BEHIND_PROXY": "true"})
    assert tls.http.tls
    assert proxied.http.behind_proxy
    with pytest.raises(SettingsError, match="environment NUA_HTTP"):
        settings.load(environ=base)
