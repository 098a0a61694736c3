import base64

import pytest

from citygas.platform.settings import DEVELOPMENT_MASTER_KEY, InsecureSettingsError, Settings

GOOD_KEY = base64.b64encode(b"k" * 32).decode()


def test_development_runs_with_the_development_key() -> None:
    assert Settings(environment="development").master_key == DEVELOPMENT_MASTER_KEY


@pytest.mark.parametrize("key", ["", "changeme", DEVELOPMENT_MASTER_KEY])
def test_production_refuses_a_placeholder_master_key(key: str) -> None:
    with pytest.raises(InsecureSettingsError, match="CITYGAS_MASTER_KEY is missing or a placeholder"):
        Settings(environment="production", master_key=key)


def test_production_refuses_a_short_master_key() -> None:
    with pytest.raises(InsecureSettingsError, match="must decode to 32 bytes, not 5"):
        Settings(environment="production", master_key=base64.b64encode(b"short").decode())


def test_production_starts_with_a_real_key_and_secure_cookies() -> None:
    settings = Settings(environment="production", master_key=GOOD_KEY)
    assert settings.secure_cookies is True
    assert settings.master_key_bytes == b"k" * 32


def test_settings_come_from_citygas_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYGAS_DATABASE_URL", "postgresql+psycopg://x@db/citygas")
    monkeypatch.setenv("CITYGAS_PORT", "9001")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://x@db/citygas"
    assert settings.port == 9001
