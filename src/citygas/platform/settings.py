"""Typed settings from `CITYGAS_*` environment variables.

Outside development and test, a missing or placeholder secret stops start-up: a production
deployment that silently ran with the development master key would leave every vending key
readable by anyone with the source code.
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_MASTER_KEY = "ZGV2ZWxvcG1lbnQtb25seS1tYXN0ZXIta2V5LTMyYnk="  # "development-only-master-key-32by"
PLACEHOLDERS = {"", "changeme", "change-me", "secret", "placeholder", DEVELOPMENT_MASTER_KEY}


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class InsecureSettingsError(RuntimeError):
    """A secret is missing or still a placeholder outside development."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYGAS_", env_file=".env", extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    database_url: str = Field(
        default="sqlite:///var/citygas.db",
        description="SQLAlchemy URL. SQLite file (embedded default) or postgresql+psycopg://…",
    )
    master_key: str = Field(
        default=DEVELOPMENT_MASTER_KEY,
        description="Base64 of 32 random bytes. Encrypts vending keys and other secrets at rest.",
    )
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    log_json: bool = True
    run_worker_in_process: bool = Field(
        default=True, description="Relay the outbox inside the web process (one-command development)."
    )
    worker_poll_seconds: float = 1.0
    outbox_max_attempts: int = 8
    outbox_lease_seconds: float = Field(
        default=60.0, description="How long a claimed batch is held before another worker may take it."
    )
    plugins: str = Field(default="", description="Comma-separated modules to import at start-up.")
    simulator: bool | None = Field(
        default=None, description="Serve simulated meters under /sim/; on by default except in production."
    )
    simulator_speed: float = Field(
        default=1.0, description="How much faster than real time simulated meters run."
    )
    simulator_state_dir: Path | None = Field(
        default=Path("var/simulator"), description="Where simulated meters keep their state."
    )
    session_hours: int = 12
    customer_session_days: int = 30
    otp_ttl_seconds: int = 300
    otp_max_per_hour: int = 5
    login_lockout_threshold: int = 5

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment in (Environment.DEVELOPMENT, Environment.TEST):
            return self
        key = self.master_key.strip()
        if key in PLACEHOLDERS or key.lower() in PLACEHOLDERS:
            raise InsecureSettingsError(
                "CITYGAS_MASTER_KEY is missing or a placeholder. Outside development set it to the "
                'base64 of 32 random bytes, e.g. `python -c "import os,base64;'
                'print(base64.b64encode(os.urandom(32)).decode())"`.'
            )
        try:
            raw = base64.b64decode(self.master_key, validate=True)
        except binascii.Error as exc:
            raise InsecureSettingsError("CITYGAS_MASTER_KEY is not valid base64.") from exc
        if len(raw) != 32:
            raise InsecureSettingsError(f"CITYGAS_MASTER_KEY must decode to 32 bytes, not {len(raw)}.")
        return self

    @property
    def simulator_enabled(self) -> bool:
        return (
            self.simulator if self.simulator is not None else self.environment is not Environment.PRODUCTION
        )

    @property
    def is_development(self) -> bool:
        return self.environment is Environment.DEVELOPMENT

    @property
    def secure_cookies(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def master_key_bytes(self) -> bytes:
        return base64.b64decode(self.master_key)

    @property
    def plugin_modules(self) -> list[str]:
        return [m.strip() for m in self.plugins.split(",") if m.strip()]

    def sqlite_path(self) -> Path | None:
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and ":memory:" not in self.database_url:
            return Path(self.database_url[len(prefix) :])
        return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
