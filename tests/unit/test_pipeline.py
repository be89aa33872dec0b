"""The pipeline's table of stages names modules that exist, in the order a write meets them."""

from __future__ import annotations

import importlib
import inspect
import re

from bosun.api import pipeline, storage
from bosun.api.pipeline import STAGES


def test_every_stage_names_existing_modules_and_the_table_lists_them() -> None:
    doc = pipeline.__doc__ or ""
    rows = [line for line in doc.splitlines() if re.match(r"^\d+\s", line)]
    assert [int(r.split()[0]) for r in rows] == [s.number for s in STAGES]
    for stage, row in zip(STAGES, rows, strict=True):
        assert row.split(None, 1)[1].startswith(stage.name), (stage, row)
        for module in stage.modules:
            importlib.import_module(f"bosun.api.{module}")
            assert module in doc, module


def test_the_write_path_meets_the_stages_in_the_tables_order() -> None:
    create = inspect.getsource(storage.Storage.create)
    order = ["prepare_for_create", "strategy.default", "admission.mutate", "validate(res, obj)",
             "admission.validate", "self.store.create"]
    positions = [create.index(step) for step in order]
    assert positions == sorted(positions)
    update = inspect.getsource(storage.Storage._commit_update)
    order = ["apply_update_defaults", "strategy.default", "validate(res, new)", "validate_update",
             "admission.validate", "self.store.update"]
    positions = [update.index(step) for step in order]
    assert positions == sorted(positions)


def test_generic_modules_never_name_a_kind() -> None:
    for module in ("storage", "lifecycle", "rest", "target", "subresources", "admission.base", "strategy.base"):
        source = inspect.getsource(importlib.import_module(f"bosun.api.{module}"))
        assert not re.search(r"\.kind\s*==|kind\s*==\s*\"", source), module
