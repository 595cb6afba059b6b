"""TLS for the webhook: a server context from PEM files (reloaded when they change), or a CA and
serving certificate generated at start whose CA goes into the MutatingWebhookConfiguration.

Certificate building and the caBundle patch are pure functions; `patch_ca_bundle` is the one
call to the API server (official kubernetes client: get and JSON-patch of one named object).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from servo.system.safefile import write_private_files

logger = logging.getLogger(__name__)

# Regenerated at every start, so a year is plenty; the API server checks the dates.
CA_VALIDITY = dt.timedelta(days=365)
SERVING_VALIDITY = dt.timedelta(days=365)
# Clocks of the API server and this pod may differ a little.
BACKDATE = dt.timedelta(minutes=5)
# How often, at most, the certificate files are checked for a change (cert-manager renewals).
RELOAD_CHECK_S = 30.0


@dataclass(frozen=True, slots=True)
class CertPair:
    """PEM bytes of a certificate (chain) and its private key."""

    cert_pem: bytes
    key_pem: bytes


def service_dns_names(service: str, namespace: str) -> list[str]:
    """The names the API server may use for a webhook Service (it uses <svc>.<ns>.svc)."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate_ca(common_name: str, *, now: dt.datetime) -> CertPair:
    """A self-signed CA that may sign serving certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def generate_serving_cert(
    ca: CertPair, dns_names: list[str], *, now: dt.datetime, ip_addresses: list[str] | None = None
) -> CertPair:
    """A serving certificate for `dns_names` (and IPs) signed by `ca`."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses or []]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + SERVING_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return CertPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def write_pair(
    pair: CertPair, directory: Path, stem: str, *, with_key: bool = True
) -> tuple[Path, Path]:
    """Write `<stem>.crt` and (`with_key`) `<stem>.key` into `directory`, 0600 and never
    through a link (servo/system/safefile.py); return their paths."""
    files = {f"{stem}.crt": pair.cert_pem}
    if with_key:
        files[f"{stem}.key"] = pair.key_pem
    write_private_files(directory, files)
    return directory / f"{stem}.crt", directory / f"{stem}.key"


def server_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    """A TLS server context (1.2 and later) with the given certificate and key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


class CertReloader:
    """Reloads the certificate into a live context when its files change (cert-manager renews
    them in place through the mounted Secret); a half-written pair is retried later."""

    def __init__(
        self,
        ctx: ssl.SSLContext,
        cert_file: str | Path,
        key_file: str | Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        check_s: float = RELOAD_CHECK_S,
    ) -> None:
        self.ctx, self.cert_file, self.key_file = ctx, Path(cert_file), Path(key_file)
        self.clock, self.check_s = clock, check_s
        self._lock = threading.Lock()
        self._stamp = self._mtimes()
        self._checked = clock()

    def _mtimes(self) -> tuple[float, float]:
        try:
            return self.cert_file.stat().st_mtime, self.key_file.stat().st_mtime
        except OSError:
            return (0.0, 0.0)

    def __call__(self) -> None:
        with self._lock:
            if self.clock() - self._checked < self.check_s:
                return
            self._checked = self.clock()
            stamp = self._mtimes()
            if stamp == self._stamp:
                return
            try:
                # Affects connections made from now on; open ones keep their certificate.
                self.ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
            except (OSError, ssl.SSLError) as e:
                logger.warning(
                    "certificate reload failed, keeping the old one",
                    extra={"error": str(e), "cert": str(self.cert_file)},
                )
                return
            self._stamp = stamp
            logger.info("certificate reloaded", extra={"cert": str(self.cert_file)})


# -- the caBundle of the MutatingWebhookConfiguration ---------------------------------------


def build_ca_bundle_patch(
    config: Mapping[str, Any], ca_pem: bytes, *, service: str, namespace: str
) -> list[dict[str, Any]]:
    """PURE: JSON-Patch ops that set caBundle on each webhook of `config` calling our Service.

    Each change is guarded by a `test` of the webhook's name at that index, so a concurrent
    edit that reorders the list makes the patch fail instead of landing on the wrong webhook.
    [] when every caBundle is already right.
    """
    bundle = base64.b64encode(ca_pem).decode()
    ops: list[dict[str, Any]] = []
    webhooks = config.get("webhooks")
    for i, hook in enumerate(webhooks if isinstance(webhooks, list) else []):
        if not isinstance(hook, Mapping):
            continue
        client = hook.get("clientConfig")
        svc = client.get("service") if isinstance(client, Mapping) else None
        if not isinstance(svc, Mapping) or (svc.get("name"), svc.get("namespace")) != (
            service,
            namespace,
        ):
            continue
        assert isinstance(client, Mapping)
        if client.get("caBundle") == bundle:
            continue
        ops.append({"op": "test", "path": f"/webhooks/{i}/name", "value": hook.get("name")})
        ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": bundle})
    return ops


class CaBundleError(Exception):
    """The caBundle could not be read or patched (RBAC, missing object, API down)."""


def patch_ca_bundle(
    api_client: Any, name: str, ca_pem: bytes, *, service: str, namespace: str
) -> int:
    """Put `ca_pem` into the named MutatingWebhookConfiguration; return the webhooks changed.

    Needs get and patch on mutatingwebhookconfigurations/<name> (example/webhook.yaml).
    """
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    api = k8s.AdmissionregistrationV1Api(api_client)
    try:
        raw: Any = api.read_mutating_webhook_configuration(
            name, _preload_content=False, _request_timeout=10
        )
        config = json.loads(raw.data)
        ops = build_ca_bundle_patch(config, ca_pem, service=service, namespace=namespace)
        if not any(op["op"] == "add" for op in ops):
            hooks = config.get("webhooks") or []
            if not any(
                (h.get("clientConfig") or {}).get("service", {}).get("name") == service
                for h in hooks
            ):
                raise CaBundleError(
                    f"mutatingwebhookconfiguration {name}: no webhook calls "
                    f"service {namespace}/{service}"
                )
            return 0
        api.patch_mutating_webhook_configuration(
            name, ops, _content_type="application/json-patch+json", _request_timeout=10
        )
    except ApiException as e:
        raise CaBundleError(f"mutatingwebhookconfiguration {name}: {e.status} {e.reason}") from e
    except (OSError, ValueError, HTTPError) as e:
        raise CaBundleError(f"mutatingwebhookconfiguration {name}: {e}") from e
    return sum(1 for op in ops if op["op"] == "add")
