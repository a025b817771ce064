"""How every Kafka client of ours connects: plaintext on a laptop, TLS and SASL in production.

One set of environment variables configures the worker (Faust), the gateway (aiokafka), the CLI tools
and the simulator (kafka-python) alike:

==========================================  =====================================================
``DISTILLGUARD_KAFKA_SECURITY_PROTOCOL``    ``PLAINTEXT`` (default), ``SSL``, ``SASL_PLAINTEXT``, ``SASL_SSL``
``DISTILLGUARD_KAFKA_SASL_MECHANISM``       ``SCRAM-SHA-512`` (default with SASL), ``SCRAM-SHA-256``, ``PLAIN``
``DISTILLGUARD_KAFKA_SASL_USERNAME``        the principal
``DISTILLGUARD_KAFKA_SASL_PASSWORD``        its secret — or ``…_PASSWORD_FILE``: a file holding it
``DISTILLGUARD_KAFKA_SSL_CAFILE``           PEM bundle to trust (default: the system's)
==========================================  =====================================================

The password is never printed: ``repr`` masks it, and errors name the variable, not its value.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["KafkaSecurity", "aiokafka_config", "kafka_python_config"]

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
_ENV = "DISTILLGUARD_KAFKA_"


@dataclass(frozen=True)
class KafkaSecurity:
    """TLS and SASL settings for one client.

    >>> s = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "dg", "s3cret")
    >>> "s3cret" in repr(s), s.kafka_python()["sasl_mechanism"]
    (False, 'SCRAM-SHA-512')
    >>> KafkaSecurity("SASL_SSL", "GSSAPI", "dg", "x")
    Traceback (most recent call last):
    ...
    ValueError: DISTILLGUARD_KAFKA_SASL_MECHANISM must be one of SCRAM-SHA-512, SCRAM-SHA-256, PLAIN, got 'GSSAPI'
    """

    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"{_ENV}SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.sasl:
            if self.mechanism not in MECHANISMS:
                raise ValueError(f"{_ENV}SASL_MECHANISM must be one of {', '.join(MECHANISMS)}, got {self.mechanism!r}")
            if not self.username or not self.password:
                raise ValueError(f"{self.protocol} needs {_ENV}SASL_USERNAME and {_ENV}SASL_PASSWORD(_FILE)")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> KafkaSecurity:
        """Read the ``DISTILLGUARD_KAFKA_*`` variables (see the module's table)."""
        env = dict(os.environ) if env is None else env
        protocol = env.get(f"{_ENV}SECURITY_PROTOCOL", "PLAINTEXT").upper()
        password = env.get(f"{_ENV}SASL_PASSWORD")
        if password is None and (path := env.get(f"{_ENV}SASL_PASSWORD_FILE")):
            password = Path(path).read_text().strip()
        mechanism = env.get(f"{_ENV}SASL_MECHANISM", "SCRAM-SHA-512" if protocol.startswith("SASL_") else "")
        return cls(protocol, mechanism.upper() or None, env.get(f"{_ENV}SASL_USERNAME"), password,
                   env.get(f"{_ENV}SSL_CAFILE"))  # fmt: skip

    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying client context (hostname checked) trusting ``cafile`` or the system's roots."""
        return ssl.create_default_context(cafile=self.cafile) if self.tls else None

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's producers, consumers and admin client."""
        out: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            out["ssl_context"] = self.ssl_context()
        if self.sasl:
            out |= {"sasl_mechanism": self.mechanism, "sasl_plain_username": self.username,
                    "sasl_plain_password": self.password}  # fmt: skip
        return out

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producers and consumers (same names as kafka-python's)."""
        return self.kafka_python()

    def faust(self) -> Any:
        """Faust's ``broker_credentials`` (None for plaintext)."""
        import faust

        if self.sasl:
            return faust.SASLCredentials(username=self.username, password=self.password, mechanism=self.mechanism,
                                         ssl_context=self.ssl_context())  # fmt: skip
        if self.tls:
            return faust.SSLCredentials(self.ssl_context())
        return None


def kafka_python_config() -> dict[str, Any]:
    """kafka-python keyword arguments from the environment."""
    return KafkaSecurity.from_env().kafka_python()


def aiokafka_config() -> dict[str, Any]:
    """aiokafka keyword arguments from the environment."""
    return KafkaSecurity.from_env().aiokafka()
