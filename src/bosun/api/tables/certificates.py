"""Rows of CertificateSigningRequests, as upstream's printer shows them."""

from __future__ import annotations

from datetime import datetime

from bosun.api.tables.format import Cells, Obj, age, dig, human_duration, name_of


def csr_condition(o: Obj) -> str:
    """``Pending``, ``Approved``, ``Denied``, then ``,Failed`` and ``,Issued`` as they apply."""
    types = {c.get("type") for c in dig(o, "status", "conditions") or [] if isinstance(c, dict)}
    out = "Denied" if "Denied" in types else "Approved" if "Approved" in types else "Pending"
    if "Failed" in types:
        out += ",Failed"
    if dig(o, "status", "certificate"):
        out += ",Issued"
    return out


def csr_row(o: Obj, now: datetime) -> Cells:
    seconds = dig(o, "spec", "expirationSeconds")
    duration = human_duration(float(seconds)) if isinstance(seconds, int) else "<none>"
    return [name_of(o), age(o, now), dig(o, "spec", "signerName") or "", dig(o, "spec", "username") or "",
            duration, csr_condition(o)]
