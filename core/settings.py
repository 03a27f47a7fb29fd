"""One typed settings object for every `CLIENTLENS_*` variable (and the two other tools'
variables clientlens honours, `MLFLOW_TRACKING_URI` and `BENTOML_HOME`).

Read once, where a program starts (`Settings()` or `Settings.from_env(env)`), and passed to the
code that needs it; library code never reads `os.environ` itself. Relative paths resolve
against the working directory at read time. Every location defaults to a folder under `home`.

| variable | field | default |
|---|---|---|
| `CLIENTLENS_HOME` | `home` | `./.clientlens` |
| `MLFLOW_TRACKING_URI` | `tracking_uri` | `sqlite:///<home>/mlflow.db` |
| `CLIENTLENS_ARTIFACTS` | `artifacts` | `<home>/mlartifacts` (artefacts of a local MLflow store) |
| `BENTOML_HOME` | `bentoml_home` | `<home>/bentoml` |
| `CLIENTLENS_FEATURES` | `features` | `<home>/features` |
| `CLIENTLENS_FEATURES_TABLE` | `features_table` | `<features>/latest.parquet` (`/score_ids`) |
| `CLIENTLENS_INFERENCE_LOG` | `inference_log` | `<home>/inference_log` |
| `CLIENTLENS_REPORTS` | `reports` | `<home>/reports` |
| `CLIENTLENS_COMPILED_DIR` | `compiled_dir` | `<home>/compiled` |
| `CLIENTLENS_COMPILED_MODELS` | `compiled_models` | `true` (serve compiled trees) |
| `CLIENTLENS_API_KEY` | `api_key` | empty (no key required) |
| `CLIENTLENS_WORKERS` | `workers` | 1 |
| `CLIENTLENS_RELOAD_SECONDS` | `reload_seconds` | 30 (0 = never poll for a new champion) |
| `CLIENTLENS_MAX_BATCH` | `max_batch` | 10,000 customers per request |
| `CLIENTLENS_LOG_FLUSH_SECONDS` | `log_flush_seconds` | 2 |
| `CLIENTLENS_LOG_FLUSH_ROWS` | `log_flush_rows` | 20,000 |
| `CLIENTLENS_TRACING` | `tracing` | false (BentoML's OpenTelemetry middleware left out) |
| `CLIENTLENS_LGBM_THREADS` | `lgbm_threads` | 1 (LightGBM threads per tuning trial) |
| `CLIENTLENS_SHARED_DATA` | `shared_data` | unset (specs' `shared/data/` paths as written) |
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict


class _MappingEnvSource(EnvSettingsSource):
    """The environment source, reading a given mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], mapping: Mapping[str, str]) -> None:
        self._mapping = mapping
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._mapping.items()}


def _under(home: Path, value: Path | None, name: str) -> Path:
    return (value if value is not None else home / name).resolve()


class Settings(BaseSettings):
    """Every setting clientlens reads from the environment. Immutable; build a new one to change."""

    model_config = SettingsConfigDict(env_prefix="CLIENTLENS_", frozen=True, extra="ignore", populate_by_name=True)

    home: Path = Field(Path(".clientlens"), description="The embedded-defaults home folder.")
    tracking_uri_: str | None = Field(
        None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "tracking_uri"), description="MLflow tracking URI."
    )
    artifacts_: Path | None = Field(None, validation_alias=AliasChoices("CLIENTLENS_ARTIFACTS", "artifacts"))
    bentoml_home_: Path | None = Field(None, validation_alias=AliasChoices("BENTOML_HOME", "bentoml_home"))
    features_: Path | None = Field(None, validation_alias=AliasChoices("CLIENTLENS_FEATURES", "features"))
    features_table_: Path | None = Field(
        None, validation_alias=AliasChoices("CLIENTLENS_FEATURES_TABLE", "features_table")
    )
    inference_log_: Path | None = Field(
        None, validation_alias=AliasChoices("CLIENTLENS_INFERENCE_LOG", "inference_log")
    )
    reports_: Path | None = Field(None, validation_alias=AliasChoices("CLIENTLENS_REPORTS", "reports"))
    compiled_dir_: Path | None = Field(None, validation_alias=AliasChoices("CLIENTLENS_COMPILED_DIR", "compiled_dir"))
    compiled_models: bool = True
    api_key: str = ""
    workers: int = Field(1, ge=1)
    reload_seconds: float = Field(30.0, ge=0)
    max_batch: int = Field(10_000, ge=1)
    log_flush_seconds: float = Field(2.0, gt=0)
    log_flush_rows: int = Field(20_000, ge=1)
    lgbm_threads: int = Field(1, ge=1)
    tracing: bool = Field(
        False,
        description="Keep BentoML's OpenTelemetry middleware on every path (its exporter and sample rate are "
        "set in the BentoML configuration). Off, the service is served without it: with BentoML's default "
        "of no exporter it records nothing, yet costs ~0.3 ms per request (#18).",
    )
    shared_data: Path | None = None

    @field_validator("compiled_models", "tracing", mode="before")
    @classmethod
    def _switch(cls, v: object) -> object:
        if isinstance(v, str):
            return v.strip().lower() not in ("0", "false", "no", "off", "")
        return v

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from `env` (e.g. a subprocess environment) and nothing else; `None` = this process's."""
        if env is None:
            return cls()
        mapping = dict(env)

        class _FromMapping(cls):  # type: ignore[valid-type,misc]
            @classmethod
            def settings_customise_sources(cls_, settings_cls, init_settings, **_sources):
                return (init_settings, _MappingEnvSource(settings_cls, mapping))

        return cls.model_validate(_FromMapping().model_dump())

    # --- resolved locations -----------------------------------------------------------------

    @property
    def home_dir(self) -> Path:
        return self.home.resolve()

    @property
    def tracking_uri(self) -> str:
        return self.tracking_uri_ or f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def artifacts(self) -> Path:
        return _under(self.home_dir, self.artifacts_, "mlartifacts")

    @property
    def bentoml_home(self) -> Path:
        return _under(self.home_dir, self.bentoml_home_, "bentoml")

    @property
    def features(self) -> Path:
        return _under(self.home_dir, self.features_, "features")

    @property
    def features_table(self) -> Path:
        return self.features_table_.resolve() if self.features_table_ is not None else self.features / "latest.parquet"

    @property
    def inference_log(self) -> Path:
        return _under(self.home_dir, self.inference_log_, "inference_log")

    @property
    def reports(self) -> Path:
        return _under(self.home_dir, self.reports_, "reports")

    @property
    def compiled_dir(self) -> Path:
        return _under(self.home_dir, self.compiled_dir_, "compiled")

    def process_env(self) -> dict[str, str]:
        """The variables a child process (the BentoML server, `bentoml build`) needs to see the same
        locations as this one, all as absolute paths."""
        return {
            "CLIENTLENS_HOME": str(self.home_dir),
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "CLIENTLENS_ARTIFACTS": str(self.artifacts),
            "BENTOML_HOME": str(self.bentoml_home),
            "CLIENTLENS_FEATURES": str(self.features),
            "CLIENTLENS_INFERENCE_LOG": str(self.inference_log),
            "CLIENTLENS_REPORTS": str(self.reports),
            "CLIENTLENS_COMPILED_DIR": str(self.compiled_dir),
        }
