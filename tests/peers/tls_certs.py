"""A throwaway certificate authority for the TLS tests, made with the openssl command (Debian's
``openssl`` package): a CA and server certificates it signs, valid for two days, for loopback."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Leaf:
    cert: Path  # the leaf's certificate (PEM)
    key: Path  # its private key (PEM, unencrypted)
    bundle: Path  # certificate then key, one PEM file (what baresip's sip_certificate reads)


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        raise AssertionError("the openssl command is not installed (Debian package openssl)")
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class TestCA:
    """A CA in ``workdir``: ``ca`` is its certificate, the bundle a verifier trusts."""

    __test__ = False  # not a test class, for pytest

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.ca, self._ca_key = workdir / "ca.crt", workdir / "ca.key"
        _openssl(
            *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-days", "2", "-subj", "/CN=phoneagent test CA", "-keyout", str(self._ca_key)),
            *("-out", str(self.ca), "-addext", "basicConstraints=critical,CA:TRUE"),
            *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
            cwd=workdir,
        )

    def leaf(self, name: str, *, dns: str = "localhost", ip: str = "127.0.0.1") -> Leaf:
        """A server certificate for ``dns`` and ``ip``, signed by this CA."""
        key, csr, cert = (self.dir / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        ext = self.dir / f"{name}.ext"
        ext.write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:{dns},IP:{ip}\n"
        )
        _openssl(
            *("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-subj", f"/CN={dns}", "-keyout", str(key), "-out", str(csr)),
            cwd=self.dir,
        )
        _openssl(
            *("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(self._ca_key)),
            *("-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert)),
            cwd=self.dir,
        )
        bundle = self.dir / f"{name}.pem"
        bundle.write_text(cert.read_text() + key.read_text())
        return Leaf(cert, key, bundle)
