"""Server settings, read from the environment (prefix ``FHIR_CLR_``) or passed explicitly.

This is the only module that reads ``FHIR_CLR_*`` variables. Precedence: values passed in (command-line flags)
over the environment over the defaults below.
"""

from __future__ import annotations

from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_PROFILES_DIR = PACKAGE_DIR / "profiles"
"""Conformance resources and code lists shipped in the package (the repository's ``profiles/``)."""
BUNDLED_MAPPINGS_DIR = PACKAGE_DIR / "mappings"
"""Flat-file mapping specs shipped in the package (the repository's ``mappings/``)."""
BUNDLED_NOTICES_DIR = PACKAGE_DIR / "notice_templates"
"""Notice templates shipped in the package (the repository's ``notices/``, through the ``notice_templates`` link)."""
BUNDLED_LETTERS_DIR = BUNDLED_NOTICES_DIR / "letters"
"""The Member letter template, plan contact and enclosures shipped in the package (the repository's
``notices/letters/``)."""
DEFAULT_DATA_DIR = Path("./data")


def package_version() -> str:
    """The installed fhir-clr version (``0+unknown`` when run from a tree that was never installed)."""
    try:
        return version("fhir-clr")
    except PackageNotFoundError:
        return "0+unknown"


class ConfigurationError(ValueError):
    """The settings cannot run a server; the message says which setting to fix (one line, no secrets)."""


class Settings(BaseSettings):
    """Everything the server can be configured with. Environment variables win over defaults."""

    model_config = SettingsConfigDict(env_prefix="FHIR_CLR_", extra="ignore")

    data_dir: Path = Field(default=DEFAULT_DATA_DIR, description="Directory of the embedded store and files.")
    store_url: str | None = Field(
        default=None,
        description="Store location: unset or sqlite:///path for the embedded store, mongodb://... for MongoDB.",
    )
    base_url: str | None = Field(
        default=None,
        description="Public base URL (e.g. https://fhir.example.org/fhir). Required with authentication on (its "
        "token URL is the only valid assertion audience); unset in dev mode: derived from each request.",
    )
    mongo_db: str | None = Field(default=None, description="MongoDB database when the store URL names none "
                                 "(default fhirclr).")
    listen_url: str | None = Field(
        default=None, description="Where this process listens (set by `fhir-clr serve`); links in webhook "
        "notifications use base_url, else this.")
    profiles_dir: Path = Field(default=BUNDLED_PROFILES_DIR, description="Conformance resources and CLR code "
                               "lists (a plan's own copy of profiles/); default: the ones shipped in the package.")
    mappings_dir: Path = Field(default=BUNDLED_MAPPINGS_DIR, description="Flat-file mapping specs (a plan's own "
                               "copy of mappings/); default: the ones shipped in the package.")
    notices_dir: Path = Field(default=BUNDLED_NOTICES_DIR, description="Notice templates, one per notice kind "
                              "and channel (a plan's own copy of notices/); default: the ones shipped in the package.")
    notice_delivery: bool = Field(default=False, description="Run the notice worker: compose the owed CLR notices "
                                  "and deliver them (email, FHIR subscription, digest; letters are queued for the "
                                  "print batch). Off until the plan has configured its channels.")
    notice_from: str | None = Field(default=None, description="Sender address of notice email (From).")
    notice_poll_seconds: float = Field(default=2.0, gt=0, description="How often the notice worker looks for "
                                       "obligations to compose and notices to send that other server processes "
                                       "committed (a commit in its own process wakes it at once).")
    notice_retry_base_seconds: float = Field(default=5.0, gt=0, description="First delay before re-trying a "
                                             "notice whose delivery failed for a passing reason (doubles).")
    notice_retry_max_seconds: float = Field(default=900.0, gt=0, description="Longest delay between two tries "
                                            "of one notice.")
    smtp_host: str | None = Field(default=None, description="SMTP relay for notice email; unset = no email "
                                  "channel.")
    smtp_port: int | None = Field(default=None, ge=1, le=65535, description="SMTP port (default 587 for "
                                  "starttls, 465 for implicit).")
    smtp_username: str | None = Field(default=None, description="SMTP user name (login only when set).")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password (prefer smtp_password_file); "
                                            "never shown in a repr or log.")
    smtp_password_file: Path | None = Field(default=None, description="File holding the SMTP password.")
    smtp_tls: str = Field(default="starttls", pattern="^(starttls|implicit)$", description="starttls (upgrade "
                          "a plain connection, required) or implicit (TLS from the first byte); never plain text.")
    smtp_ca_file: Path | None = Field(default=None, description="PEM file of CA certificates to trust for the "
                                      "SMTP relay (a private CA); default: the system's trust store.")
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, description="SMTP connection and command timeout.")
    letters_dir: Path = Field(default=BUNDLED_LETTERS_DIR, description="Member letters folder (a plan's own copy "
                              "of notices/letters/: letters.yaml, the letter template, the enclosure PDFs).")
    default_page_size: int = Field(default=20, ge=1)
    max_page_size: int = Field(default=1000, ge=1)
    max_bundle_entries: int = Field(default=5000, ge=1)
    max_bundle_response_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="Most bytes the read entries (searches, reads, history) "
        "of one batch or transaction may answer with; entries past it answer 422 too-costly.")
    sqlite_synchronous: str = Field(default="NORMAL", pattern="^(OFF|NORMAL|FULL|EXTRA)$")
    sqlite_read_threads: int = Field(default=4, ge=1)
    dev: bool = Field(default=False, description="Development mode: no authentication, loopback only.")
    log_level: str = Field(default="INFO", pattern="(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$",
                           description="Lowest level of the JSON log lines written to stderr.")
    fixed_now: datetime | None = Field(
        default=None, description="Development mode only: the current time business rules see (deadline tests).")
    auth_signing_key: Path | None = Field(
        default=None, description="Private JWK file signing access tokens; unset = generated in the data directory.")
    access_token_lifetime: int = Field(default=300, ge=30, le=300, description="Access token lifetime (seconds).")
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="Largest request body (413 above).")
    rate_limit_per_second: float = Field(default=50.0, ge=0, description="Requests per second per client; 0 = off.")
    rate_limit_burst: int = Field(default=200, ge=1, description="Requests a client may send in one burst.")
    token_rate_per_minute: float = Field(default=60.0, ge=0, description="Access tokens one client may get per "
                                         "minute at /auth/token (after its assertion verifies); 0 = off.")
    token_rate_burst: int = Field(default=30, ge=1, description="Tokens one client may get in one burst.")
    token_source_rate_per_minute: float = Field(default=300.0, ge=0, description="Token requests one remote "
                                                "address may send per minute, whatever they carry; 0 = off.")
    token_source_rate_burst: int = Field(default=100, ge=1, description="Token requests one remote address may "
                                         "send in one burst.")
    jwks_min_refetch_seconds: float = Field(default=60.0, ge=0, description="Shortest time between two fetches "
                                            "of one client's JWKS URL (an unknown kid does not force more).")
    metrics_loopback_without_token: bool = Field(
        default=False, description="Serve /metrics without a token to callers on a loopback address (a scraper on "
        "the same host); otherwise /metrics needs a plan token with a read scope on every type.")
    max_body_elements: int = Field(default=600_000, ge=1000, description="Most JSON values (keys included) in "
                                   "one request body (413 above); a 5,000-entry Bundle of referral Tasks holds "
                                   "about 525,000.")
    max_body_strings: int = Field(default=400_000, ge=1000, description="Most JSON strings (keys included) in "
                                  "one request body (413 above); that Bundle holds about 335,000.")
    large_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Request bodies above this size are "
                                  "processed at most large_body_concurrency at a time per process.")
    large_body_concurrency: int = Field(default=2, ge=1, description="Large request bodies processed at once.")
    webhook_allowed_hosts: str = Field(
        default="", description="Comma-separated host names, addresses or CIDR networks that webhook endpoints and "
        "client JWKS URLs may use although they are not public (e.g. 127.0.0.1,10.0.0.0/8); only these may use "
        "plain http.")
    webhook_max_attempts: int = Field(default=10, ge=1, description="Failed attempts before a subscription "
                                      "goes to error.")
    webhook_retry_base_seconds: float = Field(default=2.0, gt=0, description="First retry delay (doubles).")
    webhook_retry_max_seconds: float = Field(default=600.0, gt=0, description="Longest delay between retries.")
    subscription_poll_seconds: float = Field(default=0.5, gt=0, description="How often the subscription worker "
                                             "looks for work committed by other server processes.")
    obligation_sweep_seconds: float = Field(default=60.0, gt=0, description="How often overdue notice "
                                            "obligations are looked for (notice-obligation-overdue topic).")
    console_session_minutes: float = Field(default=480.0, gt=0, le=1440, description="How long a console "
                                           "sign-in lasts (the client's registration is still checked on every "
                                           "request).")
    console_counts_seconds: float = Field(default=60.0, ge=0, description="How long the console keeps the "
                                          "worklist's group counts before recounting them in the background.")
    console_figures_seconds: float = Field(default=300.0, ge=0, description="How long the console keeps "
                                           "computed compliance figures before recomputing them in the background.")
    export_file_lines: int = Field(default=100_000, ge=1, description="Resources per $export NDJSON file "
                                   "(larger outputs are split into several files).")
    subscription_lease_seconds: float = Field(default=30.0, gt=0, description="How long a server process holds "
                                              "a subscription's delivery or the notice "
                                              "worker (taken over after a crash).")

    def check_secured(self) -> None:
        """Refuse settings a server with authentication on cannot run with (ConfigurationError): it needs its
        public base URL, whose token URL is the only audience a client assertion may name. Dev mode is exempt."""
        if self.dev:
            return
        base = (self.base_url or "").strip()
        if not base:
            raise ConfigurationError("FHIR_CLR_BASE_URL must be set to the server's public base URL (e.g. "
                                     "https://fhir.example.org) when authentication is on; only --dev runs "
                                     "without it")
        parts = urlsplit(base)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
            raise ConfigurationError("FHIR_CLR_BASE_URL must be an absolute http(s) URL without query or "
                                     "fragment (e.g. https://fhir.example.org)")

    def notification_base_url(self) -> str:
        """The base URL written into webhook notifications (no request to derive it from)."""
        return (self.base_url or self.listen_url or "http://127.0.0.1:8000").rstrip("/")

    @classmethod
    def from_flags(cls, **flags: Any) -> Settings:
        """Settings with the command-line ``flags`` that were given (None = not given) over the environment."""
        return cls(**{name: value for name, value in flags.items() if value is not None})

    def as_environment(self) -> dict[str, str]:
        """The settings that differ from the defaults as ``FHIR_CLR_*`` variables (for worker processes)."""
        return {f"FHIR_CLR_{name.upper()}": value.get_secret_value() if isinstance(value, SecretStr) else str(value)
                for name, value in self.model_dump(exclude_defaults=True).items() if value is not None}

    def embedded_store_missing(self) -> bool:
        """True when the embedded store is selected but its data directory does not exist (nothing to read)."""
        return not self.store_url and not self.data_dir.is_dir()
