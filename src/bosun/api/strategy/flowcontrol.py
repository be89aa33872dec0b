"""The API Priority and Fairness kinds' strategies (flowcontrol.apiserver.k8s.io/v1).

Their rules are in :mod:`bosun.api.validation.flowcontrol`; the mandatory objects and the
FlowSchemas' ``Dangling`` condition are :mod:`bosun.api.flowcontrol`'s.
"""

from __future__ import annotations

from bosun.api.strategy.base import Strategy
from bosun.api.validation.flowcontrol import (
    default_flow_schema,
    default_priority_level,
    validate_flow_schema,
    validate_priority_level,
)

FLOW_SCHEMA = Strategy(validate_flow_schema, defaulter=default_flow_schema)
PRIORITY_LEVEL = Strategy(validate_priority_level, defaulter=default_priority_level)
