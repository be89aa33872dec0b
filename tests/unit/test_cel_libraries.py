"""Kubernetes' CEL extension libraries (bosun.api.cellib) and the cost estimator, each through
the evaluator every CEL user of the server shares (bosun.api.crd.cel)."""

from __future__ import annotations

from typing import Any

import pytest

from bosun.api.cellib import cost
from bosun.api.celrefs import undeclared
from bosun.api.crd.cel import (
    OUT_OF_BUDGET,
    Budget,
    Environment,
    EvaluationError,
    Rules,
    evaluate,
    needs_metering,
    rule_cost,
)


@pytest.mark.parametrize(("expression", "value"), [
    # lists
    ("[1, 2, 2, 5].isSorted()", True), ("['b', 'a'].isSorted()", False), ("[1, 2, 3].sum()", 6),
    ("[].sum()", 0), ("[3, 1, 2].min()", 1), ("[1.5, 0.5].max()", 1.5), ("[1, 2, 1].indexOf(1)", 0),
    ("[1, 2, 1].lastIndexOf(1)", 2), ("[1, 2].indexOf(3)", -1), ("self.items.isSorted()", True),
    # regex
    ("'abc 123 def 456'.find('[0-9]+')", "123"), ("'abc'.find('[0-9]+')", ""),
    ("'abc 123 def 456'.findAll('[0-9]+')", ["123", "456"]), ("'a1b2c3'.findAll('[0-9]', 2)", ["1", "2"]),
    # URLs
    ("url('https://user@example.com:8443/a/b?x=1&x=2&y').getScheme()", "https"),
    ("url('https://example.com:8443/a').getHost()", "example.com:8443"),
    ("url('https://[::1]:8443/a').getHostname()", "::1"), ("url('https://[::1]:8443/a').getHost()", "[::1]:8443"),
    ("url('https://example.com:8443/a').getPort()", "8443"), ("url('https://example.com/a').getPort()", ""),
    ("url('https://example.com/a%20b').getEscapedPath()", "/a%20b"),
    ("url('https://example.com/?x=1&x=2&y=').getQuery()", {"x": ["1", "2"], "y": [""]}),
    ("url('/absolute/path').getEscapedPath()", "/absolute/path"),
    ("isURL('https://example.com')", True), ("isURL('example.com')", False), ("isURL('not a url')", False),
    # quantities
    ("quantity('1') == quantity('1000m')", True), ("quantity('1Gi').isGreaterThan(quantity('1G'))", True),
    ("quantity('100m').isLessThan(quantity('1'))", True), ("quantity('2').compareTo(quantity('2000m'))", 0),
    ("quantity('500m').add(quantity('1500m')) == quantity('2')", True), ("quantity('1').add(2).asInteger()", 3),
    ("quantity('5').sub(7).sign()", -1), ("quantity('1.5').isInteger()", False), ("quantity('2k').asInteger()", 2000),
    ("quantity('250m').asApproximateFloat()", 0.25), ("isQuantity('1.5Gi')", True), ("isQuantity('1.5Gx')", False),
    # IPs and CIDRs
    ("ip('192.168.0.1').family()", 4), ("ip('::1').family()", 6), ("ip('127.0.0.1').isLoopback()", True),
    ("ip('0.0.0.0').isUnspecified()", True), ("ip('fe80::1').isLinkLocalUnicast()", True),
    ("ip('224.0.0.1').isLinkLocalMulticast()", True), ("ip('8.8.8.8').isGlobalUnicast()", True),
    ("ip('255.255.255.255').isGlobalUnicast()", False), ("isIP('1.2.3')", False), ("isIP('::ffff:1.2.3.4')", False),
    ("ip.isCanonical('2001:db8::1')", True), ("ip.isCanonical('2001:DB8::1')", False),
    ("cidr('10.0.0.0/8').containsIP(ip('10.20.30.40'))", True), ("cidr('10.0.0.0/8').containsIP('11.0.0.1')", False),
    ("cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16')", True), ("cidr('10.0.0.0/16').containsCIDR('10.0.0.0/8')", False),
    ("cidr('10.1.2.3/8').masked() == cidr('10.0.0.0/8')", True), ("cidr('10.1.2.3/8').ip() == ip('10.1.2.3')", True),
    ("cidr('2001:db8::/32').prefixLength()", 32), ("isCIDR('10.0.0.0/33')", False), ("isCIDR('10.0.0.0/8')", True),
    # formats
    ("format.dns1123Label().validate('my-name').hasValue()", False),
    ("format.dns1123Label().validate('My_Name').value().size()", 1),
    ("format.dns1123Subdomain().validate('a.b.c').hasValue()", False),
    ("format.dns1123LabelPrefix().validate('prefix-').hasValue()", False),
    ("format.named('uuid').value().validate('7a7c8e4e-4f2a-4a36-9d7b-2d0c1c9e6b1f').hasValue()", False),
    ("format.named('nope').hasValue()", False), ("format.date().validate('2024-02-30').hasValue()", True),
    ("format.labelValue().validate('a b').hasValue()", True),
    # semver
    ("semver('1.2.3').major()", 1), ("semver('1.2.3').minor()", 2), ("semver('1.2.3').patch()", 3),
    ("semver('1.2.3-rc.1').isLessThan(semver('1.2.3'))", True),
    ("semver('1.10.0').compareTo(semver('1.9.0'))", 1), ("semver('v1.2', true) == semver('1.2.0')", True),
    ("semver('1.0.0-alpha.2').isGreaterThan(semver('1.0.0-alpha.10'))", False),
    ("isSemver('1.2')", False), ("isSemver('1.2.3+build.5')", True),
    # cel-go string extensions
    ("'hello'.charAt(1)", "e"), ("'hello'.indexOf('l')", 2), ("'hello'.lastIndexOf('l')", 3),
    ("'HeLLo'.lowerAscii()", "hello"), ("'hello'.upperAscii()", "HELLO"), ("'aaa'.replace('a', 'b', 2)", "bba"),
    ("'a,b,c'.split(',')", ["a", "b", "c"]), ("'hello'.substring(1, 3)", "el"), ("'  x '.trim()", "x"),
    ("['a', 'b'].join('-')", "a-b"), ("'%s has %d items (%.1f%%)'.format(['x', 3, 12.345])", "x has 3 items (12.3%)"),
    ("strings.quote('a\"b')", '"a\\"b"'), ("sets.contains([1, 2, 3], [1, 3])", True),
])
def test_library_functions_answer_as_upstream(expression: str, value: Any) -> None:
    assert evaluate(expression, {"self": {"items": [1, 2, 3]}}) == value


@pytest.mark.parametrize(("expression", "error"), [
    ("[].min()", "min called on empty list"),
    ("quantity('1.5Gx')", "quantities must match the regular expression"),
    ("quantity('1.5').asInteger()", "cannot convert value to integer"),
    ("ip('1.2.3')", "IP Address '1.2.3' parse error during conversion from string"),
    ("ip('::ffff:1.2.3.4')", "IPv4-mapped IPv6 address is not allowed"),
    ("url('example.com')", "invalid URI for request"),
    ("{'a': 1}.indexOf(1)", "found no matching overload for 'indexOf' applied to (map, int)"),
    ("semver('1.0.0').isLessThan(quantity('1'))", "found no matching overload for 'isLessThan'"),
    ("semver('1.0')", "is not a semantic version"),
])
def test_library_errors_say_why(expression: str, error: str) -> None:
    with pytest.raises(EvaluationError) as got:
        evaluate(expression, {})
    assert error in str(got.value) and "Check function arguments" not in str(got.value)


def test_an_environment_gets_the_functions_each_expression_names() -> None:
    env = Environment({"object": {"spec": {"cpu": "500m", "cidr": "10.0.0.0/8"}}}, {"params": None})
    assert evaluate("quantity(object.spec.cpu).isLessThan(quantity('1'))", env) is True
    assert evaluate("cidr(object.spec.cidr).containsIP('10.1.1.1')", env) is True
    assert evaluate("object.spec.cpu.find('[0-9]+')", env) == "500"


def test_namespaces_are_not_undeclared_variables() -> None:
    assert undeclared("format.dns1123Label().validate(object.x).hasValue() || ip.isCanonical('1.2.3.4')",
                      {"object"}) is None
    assert undeclared("formats.x()", {"object"}) is not None


LIST_OF_STRINGS = {"type": "object", "properties": {"names": {"type": "array", "items": {"type": "string"}}}}
BOUNDED = {"type": "object", "properties": {"names": {"type": "array", "maxItems": 10,
                                                      "items": {"type": "string", "maxLength": 64}}}}


def test_estimated_cost_grows_with_the_schema_bounds() -> None:
    rule = "self.names.all(n, n.matches('^[a-z]+$'))"
    # Unbounded: as many strings as fit in 3 MiB, each as long as the request.
    assert rule_cost(rule, LIST_OF_STRINGS) > 100 * cost.STATIC_LIMIT
    small = rule_cost(rule, BOUNDED)
    assert 10 < small < 1000
    assert rule_cost("self.names.all(a, self.names.all(b, a != b))", BOUNDED) > 5 * small  # O(n^2)
    assert rule_cost("has(self.names)", LIST_OF_STRINGS) == 2  # no traversal: sizes do not matter


def test_runtime_budget_is_shared_by_an_objects_rules_and_stops_them() -> None:
    budget = Budget(total=100)
    names = {"names": ["x" * 50] * 10}
    assert budget.charge("self.names.all(n, n.size() < 100)", {"self": names}) is None
    left = budget.left
    assert 0 < left < 100
    assert budget.charge("self.names.all(n, n.startsWith('x'))", {"self": names}) == OUT_OF_BUDGET
    assert budget.charge("1 == 1", {}) == OUT_OF_BUDGET  # no more rules run once it is spent
    big = Budget()
    assert (big.charge("self.names.all(a, self.names.all(b, a.contains(b)))", {"self": {"names": ["x" * 100] * 400}})
            == "operation cancelled: actual cost limit exceeded")


def test_rules_report_running_out_of_budget_once_at_the_field() -> None:
    schema = {"type": "object", "x-kubernetes-validations": [
        {"rule": "self.names.all(a, self.names.all(b, a == b || a != b))"}] * 3,
        "properties": {"names": {"type": "array", "items": {"type": "string"}}}}
    rules = Rules()
    rules.budget.left = 5_000
    errs = rules.check("spec", schema, {"names": ["x" * 10] * 20}, None)
    assert [e.detail() for e in errs] == [f'spec: Invalid value: "object": {OUT_OF_BUDGET}']


def test_only_schemas_whose_rules_could_pass_the_budget_are_metered() -> None:
    def with_rule(schema: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "properties": {"names": {
            **schema, "x-kubernetes-validations": [{"rule": "self.all(n, n.startsWith('a'))"}]}}}
    bounded = with_rule({"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 64}})
    assert not needs_metering(bounded)
    # Each string within bounds but many of them, under an unbounded list: the rule on every
    # item may together pass the budget.
    per_item = {"type": "object", "properties": {"items": {"type": "array", "items": {
        "type": "object", "properties": {"s": {"type": "string", "maxLength": 100000}},
        "x-kubernetes-validations": [{"rule": "self.s.matches('^a*b*c*d*e*f*g*$')"}]}}}}
    assert needs_metering(per_item)
