"""Names, labels, annotations, selectors and ``metadata``: the rules every kind shares.

Messages are Kubernetes' own (apimachinery ``validation``), because users paste them into
search engines and scripts match on them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from bosun.api.errors import FieldError, forbidden, invalid, required
from bosun.api.validation.fields import Checker, child, index, key

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + r"(\." + DNS1123_LABEL_FMT + ")*"
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"

_LABEL_RE = re.compile(f"^{DNS1123_LABEL_FMT}$")
_SUBDOMAIN_RE = re.compile(f"^{DNS1123_SUBDOMAIN_FMT}$")
IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
_DNS1035_RE = re.compile(f"^{DNS1035_LABEL_FMT}$")
_QUALIFIED_RE = re.compile(f"^{QUALIFIED_NAME_FMT}$")
_LABEL_VALUE_RE = re.compile(f"^{LABEL_VALUE_FMT}$")
_CONFIG_KEY_RE = re.compile(f"^{CONFIG_KEY_FMT}$")
_PORT_NAME_CHARS = re.compile("^[-a-z0-9]+$")
_PORT_NAME_LETTER = re.compile("[a-z]")

DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    f"validation is '{DNS1123_LABEL_FMT}')"
)
DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    f"validation is '{DNS1123_SUBDOMAIN_FMT}')"
)
DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
    f"regex used for validation is '{DNS1035_LABEL_FMT}')"
)
QUALIFIED_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    f"validation is '{QUALIFIED_NAME_FMT}')"
)
QUALIFIED_NAME_WHOLE_MSG = (
    "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    f"validation is '{QUALIFIED_NAME_FMT}') with an optional DNS subdomain prefix and '/' "
    "(e.g. 'example.com/MyName')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
    f"regex used for validation is '{LABEL_VALUE_FMT}')"
)
CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  "
    f"or 'KEY_NAME',  or 'key-name', regex used for validation is '{CONFIG_KEY_FMT}')"
)

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024


def _too_long(n: int) -> str:
    return f"must be no more than {n} characters"


def dns1123_label(value: str) -> list[str]:
    out = []
    if len(value) > 63:
        out.append(_too_long(63))
    if not _LABEL_RE.match(value):
        out.append(DNS1123_LABEL_MSG)
    return out


def dns1123_subdomain(value: str) -> list[str]:
    out = []
    if len(value) > 253:
        out.append(_too_long(253))
    if not _SUBDOMAIN_RE.match(value):
        out.append(DNS1123_SUBDOMAIN_MSG)
    return out


def dns1035_label(value: str) -> list[str]:
    out = []
    if len(value) > 63:
        out.append(_too_long(63))
    if not _DNS1035_RE.match(value):
        out.append(DNS1035_LABEL_MSG)
    return out


@lru_cache(maxsize=4096)
def qualified_name(value: str) -> tuple[str, ...]:
    """Label keys, annotation keys, finalizers: ``[prefix/]name``. Remembered: the same few
    keys (app, app.kubernetes.io/name, cpu, memory...) come with every object."""
    return tuple(_qualified_name(value))


def _qualified_name(value: str) -> list[str]:
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
        prefix_errs: list[str] = []
    elif len(parts) == 2:
        prefix, name = parts
        prefix_errs = (["prefix part must be non-empty"] if not prefix
                       else ["prefix part " + m for m in dns1123_subdomain(prefix)])
    else:
        return [QUALIFIED_NAME_WHOLE_MSG]
    errs = prefix_errs
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _too_long(63))
    if name and not _QUALIFIED_RE.match(name):
        errs.append(QUALIFIED_NAME_MSG)
    return errs


def label_value(value: str) -> list[str]:
    out = []
    if len(value) > 63:
        out.append(_too_long(63))
    if not _LABEL_VALUE_RE.match(value):
        out.append(LABEL_VALUE_MSG)
    return out


def config_key(value: str) -> list[str]:
    out = []
    if len(value) > 253:
        out.append(_too_long(253))
    if not _CONFIG_KEY_RE.match(value):
        out.append(CONFIG_KEY_MSG)
    if value == ".":
        out.append("must not be '.'")
    elif value == "..":
        out.append("must not be '..'")
    elif value.startswith(".."):
        out.append("must not start with '..'")
    return out


def port_name(value: str) -> list[str]:
    """IANA service names, used for container and service port names."""
    out = []
    if len(value) > 15:
        out.append(_too_long(15))
    if not _PORT_NAME_CHARS.match(value):
        out.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        out.append("must not contain consecutive hyphens")
    if value and not _PORT_NAME_LETTER.search(value):
        out.append("must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        out.append("must not begin or end with a hyphen")
    return out


NameCheck = Callable[[str], Sequence[str]]


def check_name(c: Checker, value: str, path: str, fn: NameCheck) -> None:
    for msg in fn(value):
        c.add(invalid(path, value, msg))


def validate_labels(c: Checker, parent: Any, name: str, path: str) -> dict[str, str]:
    labels = c.string_map(parent, name, path) or {}
    for k, v in labels.items():
        for msg in qualified_name(k):
            c.add(invalid(path, k, msg))
        for msg in label_value(v):
            c.add(invalid(key(path, k), v, msg))
    return labels


def validate_annotations(c: Checker, parent: Any, name: str, path: str) -> None:
    annotations = c.string_map(parent, name, path) or {}
    total = 0
    for k, v in annotations.items():
        for msg in qualified_name(k.lower()):
            c.add(invalid(path, k, msg))
        total += len(k) + len(v)
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        c.add(FieldError("FieldValueTooLong", path, f"must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"))


_SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_label_selector(c: Checker, sel: dict[str, Any], path: str) -> None:
    """``metav1.LabelSelector``: matchLabels plus matchExpressions."""
    validate_labels(c, sel, "matchLabels", child(path, "matchLabels"))
    exprs_path = child(path, "matchExpressions")
    for i, expr in c.objects(sel, "matchExpressions", exprs_path):
        p = index(exprs_path, i)
        op = c.text(expr, "operator", child(p, "operator"))
        values = c.strings(expr, "values", child(p, "values"))
        if op in ("In", "NotIn"):
            if not values:
                c.add(required(child(p, "values"), "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                c.add(forbidden(child(p, "values"),
                                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        elif op is not None or "operator" not in expr:
            c.add(invalid(child(p, "operator"), op or "", "not a valid selector operator"))
        k = c.text(expr, "key", child(p, "key"))
        for msg in qualified_name(k or ""):
            c.add(invalid(child(p, "key"), k or "", msg))
        for j, v in enumerate(values):
            for msg in label_value(v):
                c.add(invalid(index(child(p, "values"), j), v, msg))


def selector_matches(sel: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a (valid) label selector selects ``labels``; an empty selector selects all."""
    ml = sel.get("matchLabels")
    if isinstance(ml, dict):
        for k, v in ml.items():
            if labels.get(k) != v:
                return False
    exprs = sel.get("matchExpressions")
    for expr in exprs if isinstance(exprs, list) else []:
        if not isinstance(expr, dict):
            continue
        k, op = str(expr.get("key")), expr.get("operator")
        raw = expr.get("values")
        vals: list[Any] = raw if isinstance(raw, list) else []
        present = k in labels
        if op == "In" and not (present and labels[k] in vals):
            return False
        if op == "NotIn" and present and labels[k] in vals:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def selector_is_empty(sel: dict[str, Any]) -> bool:
    return not sel.get("matchLabels") and not sel.get("matchExpressions")


def validate_object_meta(c: Checker, obj: dict[str, Any], name_fn: NameCheck, *,
                         namespaced: bool = True) -> dict[str, Any]:
    """Name (or generateName), labels, annotations, finalizers and owner references."""
    path = "metadata"
    meta = c.obj(obj, "metadata", path)
    if meta is None:
        c.add(required(child(path, "name"), "name or generateName is required"))
        return {}
    name = c.text(meta, "name", child(path, "name"))
    gen = c.text(meta, "generateName", child(path, "generateName"))
    if name:
        check_name(c, name, child(path, "name"), name_fn)
    elif gen:
        # A prefix may end in '-': the server appends random characters to it.
        for msg in name_fn(gen.rstrip("-") or "a"):
            c.add(invalid(child(path, "generateName"), gen, msg))
    else:
        c.add(required(child(path, "name"), "name or generateName is required"))
    ns = c.text(meta, "namespace", child(path, "namespace"))
    if ns and namespaced:  # cluster-scoped objects: the server clears it, as Kubernetes does
        check_name(c, ns, child(path, "namespace"), dns1123_label)
    validate_labels(c, meta, "labels", child(path, "labels"))
    validate_annotations(c, meta, "annotations", child(path, "annotations"))
    fpath = child(path, "finalizers")
    for i, f in enumerate(c.strings(meta, "finalizers", fpath)):
        for msg in qualified_name(f):
            c.add(invalid(index(fpath, i), f, msg))
    opath = child(path, "ownerReferences")
    controllers = 0
    for i, ref in c.objects(meta, "ownerReferences", opath):
        p = index(opath, i)
        for f in ("apiVersion", "kind", "name", "uid"):
            if not c.text(ref, f, child(p, f)):
                c.add(required(child(p, f)))
        if c.boolean(ref, "controller", child(p, "controller")):
            controllers += 1
    if controllers > 1:
        c.add(invalid(opath, "", "Only one reference can have Controller set to true"))
    return meta


def validate_template_meta(c: Checker, template: dict[str, Any], path: str) -> dict[str, str]:
    """A pod template's metadata: labels and annotations only (names come from the owner)."""
    meta = c.obj(template, "metadata", child(path, "metadata")) or {}
    labels = validate_labels(c, meta, "labels", child(path, "metadata.labels"))
    validate_annotations(c, meta, "annotations", child(path, "metadata.annotations"))
    return labels


def valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
