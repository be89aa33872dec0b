"""Resource quantities parse and print as Kubernetes does."""

from decimal import Decimal

import pytest

from bosun.api.quantity import (
    QUANTITY_ERROR,
    canonical_quantity,
    cpu_millis,
    format_quantity,
    parse_quantity,
    to_bytes,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Decimal(1)),
        ("500m", Decimal("0.5")),
        ("0.1", Decimal("0.1")),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        ("+2k", Decimal(2000)),
        ("-1", Decimal(-1)),
        ("100n", Decimal("0.0000001")),
        ("3u", Decimal("0.000003")),
        ("1M", Decimal(10**6)),
        ("2G", Decimal(2 * 10**9)),
        ("1T", Decimal(10**12)),
        ("1P", Decimal(10**15)),
        ("1E", Decimal(10**18)),
        ("1Ki", Decimal(1024)),
        ("1.5Gi", Decimal(1536 * 1024 * 1024)),
        ("128Mi", Decimal(128 * 2**20)),
        ("1Ti", Decimal(2**40)),
        ("1Pi", Decimal(2**50)),
        ("1Ei", Decimal(2**60)),
        ("1e3", Decimal(1000)),
        ("1E-3", Decimal("0.001")),
        ("12e+2", Decimal(1200)),
        (3, Decimal(3)),
        (0.25, Decimal("0.25")),
    ],
)
def test_parse(text: str | int | float, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["12xb", "", " 1", "1 ", "abc", "1.2.3", "1Kii", "1kb", "e3", "--1", "1e",
                                  "Mi", "1m1"])
def test_parse_rejects_with_kubernetes_message(text: str) -> None:
    with pytest.raises(ValueError, match="quantities must match the regular expression"):
        parse_quantity(text)
    assert "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'" in QUANTITY_ERROR


@pytest.mark.parametrize("bad", [None, True, [], {}, float("nan"), float("inf")])
def test_parse_rejects_non_quantities(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_quantity(bad)  # type: ignore[arg-type]


def test_cpu_millis_rounds_up() -> None:
    assert cpu_millis("250m") == 250
    assert cpu_millis("1") == 1000
    assert cpu_millis("0.0001") == 1
    assert cpu_millis(2) == 2000
    assert cpu_millis("1.5") == 1500


def test_to_bytes() -> None:
    assert to_bytes("1Gi") == 2**30
    assert to_bytes("1G") == 10**9
    assert to_bytes("1.5Ki") == 1536
    assert to_bytes("100m") == 1  # rounds up like Quantity.Value()
    assert to_bytes(512) == 512


@pytest.mark.parametrize(
    ("value", "binary", "text"),
    [
        (Decimal("0.5"), False, "500m"),
        (Decimal("0.1"), False, "100m"),
        (Decimal(2000), False, "2k"),
        (Decimal(1500), False, "1500"),
        (Decimal(0), False, "0"),
        (Decimal("1e-9"), False, "1n"),
        (Decimal("1e-10"), False, "1n"),
        (Decimal(2**30), True, "1Gi"),
        (Decimal(1536 * 2**20), True, "1536Mi"),
        (Decimal(1025), True, "1025"),
        (Decimal(512), True, "512"),
        (Decimal(-2000), False, "-2k"),
    ],
)
def test_format(value: Decimal, binary: bool, text: str) -> None:
    assert format_quantity(value, binary) == text


@pytest.mark.parametrize("text", ["500m", "2", "1Gi", "3Mi", "100k"])
def test_format_round_trips(text: str) -> None:
    binary = text.endswith("i")
    assert format_quantity(parse_quantity(text), binary) == text


@pytest.mark.parametrize(("written", "stored"), [
    (".5", "500m"), ("0.5", "500m"), ("1.5", "1500m"), ("1000m", "1"), ("1000", "1k"), ("1024", "1024"),
    ("1.5Gi", "1536Mi"), ("2048Ki", "2Mi"), ("512Mi", "512Mi"), ("1e3", "1e3"), ("129e6", "129e6"),
    ("1e-3", "1m"), ("0", "0"), (1, "1"), (0.5, "500m"), (2, "2"),
])
def test_canonical_form_keeps_the_suffix_family(written: str | int | float, stored: str) -> None:
    assert canonical_quantity(written) == stored
