"""``DbSettings.safe_url``: no password survives, wherever the URL carries it."""

from __future__ import annotations

import dataclasses

import pytest

from nua import settings


def shown(url: str) -> str:
    # Built directly: some of these URLs (no driver, no parse) would not pass load's checks,
    # and the masking must hold for any text, whatever reaches it.
    return dataclasses.replace(settings.load(environ={}, deep=False).db, url=url).safe_url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://nua@db/nua?password=SECRET",
        "postgresql+psycopg://nua:SECRET@db/nua?password=SECRET",
        "postgresql+psycopg://db/nua?sslpassword=SECRET&sslmode=require",
        "postgresql+psycopg://db/nua?PASSWORD=SECRET",
        "postgresql+psycopg://db/nua?password=SECRET&password=SECRET2",
        "mysql+pymysql://db/nua?passwd=SECRET",
        "postgresql+psycopg://db/nua?auth_token=SECRET",
        "postgresql+psycopg://db/nua?options=-csearch_path%3Dx&password=SECRET",
        "not a url: nua:SECRET@db?password=SECRET&sslpassword=SECRET",
        "postgresql+psycopg://nua:SECRET@db:bad-port/nua?password=SECRET",
        # Unparsable (a bad port) with a password SQLAlchemy would have read: any character goes.
        "postgresql+psycopg://nua:SE/CRET/SECRET@db:bad-port/nua",
        "postgresql+psycopg://nua:SE CRET SECRET@db:bad-port/nua",
        "postgresql+psycopg://nua:SE?CRET#SECRET@db:bad-port/nua",
    ],
)
def test_no_password_is_shown_wherever_it_sits(url: str) -> None:
    masked = shown(url)
    assert "SECRET" not in masked
    assert "***" in masked


def test_what_is_not_secret_is_shown_as_given() -> None:
    masked = shown("postgresql+psycopg://nua:pw@db:5433/nua?options=-csearch_path%3Dx&sslmode=require&password=pw")
    assert masked.startswith("postgresql+psycopg://nua:***@db:5433/nua?")
    assert "options=-csearch_path%3Dx" in masked
    assert "sslmode=require" in masked
    assert "password=***" in masked
    assert shown("sqlite:////var/lib/nua/nua.db") == "sqlite:////var/lib/nua/nua.db"
