"""`recflow flower`: its authentication comes from the settings and production insists on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from backend.cli.app import flower_launch
from backend.config import Settings

PROD = {
    "env": "production",
    "database_url": "postgresql://db/x",
    "broker_url": "redis://r/0",
    "api_keys": SecretStr("admin:" + "k" * 20),
}


def test_basic_auth_reaches_flower_through_its_environment_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOWER_UNAUTHENTICATED_API", "true")
    settings = Settings(flower_basic_auth=SecretStr("ops:pw-one,dev:pw-two"))
    args, env = flower_launch(settings, port=5556, address="0.0.0.0", basic_auth=None)
    assert env["FLOWER_BASIC_AUTH"] == "ops:pw-one,dev:pw-two"
    assert "FLOWER_UNAUTHENTICATED_API" not in env
    assert args[-2:] == ["--port=5556", "--address=0.0.0.0"]
    assert not any("pw-one" in a for a in args)
    # --basic-auth overrides the setting.
    _, env = flower_launch(settings, port=5555, address="127.0.0.1", basic_auth="me:other")
    assert env["FLOWER_BASIC_AUTH"] == "me:other"


def test_oauth_options_pass_through() -> None:
    settings = Settings(
        flower_auth=r".*@example\.com",
        flower_auth_provider="flower.views.auth.GithubLoginHandler",
        flower_oauth2_key="client-id",
        flower_oauth2_secret=SecretStr("client-secret"),
        flower_oauth2_redirect_uri="https://flower.example.com/login",
    )
    args, env = flower_launch(settings, port=5555, address="127.0.0.1", basic_auth=None)
    assert env["FLOWER_AUTH"] == r".*@example\.com"
    assert env["FLOWER_AUTH_PROVIDER"] == "flower.views.auth.GithubLoginHandler"
    assert env["FLOWER_OAUTH2_KEY"] == "client-id"
    assert env["FLOWER_OAUTH2_SECRET"] == "client-secret"
    assert env["FLOWER_OAUTH2_REDIRECT_URI"] == "https://flower.example.com/login"
    assert "client-secret" not in " ".join(args)


def test_production_refuses_flower_without_authentication(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, **PROD)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="RECFLOW_ENV=production needs Flower's authentication"):
        flower_launch(settings, port=5555, address="0.0.0.0", basic_auth=None)
    _, env = flower_launch(settings, port=5555, address="0.0.0.0", basic_auth="ops:pw")
    assert env["FLOWER_BASIC_AUTH"] == "ops:pw"


def test_a_bad_basic_auth_entry_is_named_without_its_text() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="entry 2 must be user:password") as caught:
        flower_launch(settings, port=5555, address="0.0.0.0", basic_auth="ops:pw,hunter2")
    assert "hunter2" not in str(caught.value)


def test_the_command_fails_with_one_line_in_production_without_auth(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RECFLOW_", "FLOWER_"))},
        "RECFLOW_DATA_DIR": str(tmp_path),
        **{f"RECFLOW_{k.upper()}": str(v) for k, v in PROD.items() if k != "api_keys"},
        "RECFLOW_API_KEYS": PROD["api_keys"].get_secret_value(),  # type: ignore[attr-defined]
    }
    out = subprocess.run(
        [sys.executable, "-m", "backend.cli", "flower"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    # A configuration the command refuses is a usage error, as invalid settings are (exit 2).
    assert out.returncode == 2
    assert out.stderr.startswith("error: RECFLOW_ENV=production needs Flower's authentication")
    assert out.stderr.count("\n") == 1
    assert "Traceback" not in out.stderr
    # Without API keys the settings refuse first, on one line, with no traceback.
    env.pop("RECFLOW_API_KEYS")
    out = subprocess.run(
        [sys.executable, "-m", "backend.cli", "flower"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 2
    assert "error: settings: RECFLOW_ENV=production needs RECFLOW_API_KEYS" in out.stderr
    assert "Traceback" not in out.stderr
