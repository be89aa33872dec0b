"""Which container an exec or attach request means: the only one by default, any named
container, init container or ephemeral container (kubectl debug attaches to its own), and a
Status naming the choices otherwise."""

from __future__ import annotations

import pytest

from bosun.api import errors
from bosun.api.exec_proxy import _container

POD = {"spec": {"containers": [{"name": "app"}, {"name": "side"}], "initContainers": [{"name": "init"}],
                "ephemeralContainers": [{"name": "debugger-x1"}]}}


def test_named_containers_of_every_kind() -> None:
    assert [_container(POD, "p", c) for c in ("app", "init", "debugger-x1")] == ["app", "init", "debugger-x1"]
    assert _container({"spec": {"containers": [{"name": "only"}]}}, "p", "") == "only"


def test_an_unknown_or_missing_name_is_refused() -> None:
    with pytest.raises(errors.APIError, match="container nope is not valid for pod p"):
        _container(POD, "p", "nope")
    with pytest.raises(errors.APIError, match=r"choose one of: \[app side\] or one of the init containers: \[init\]"):
        _container(POD, "p", "")
