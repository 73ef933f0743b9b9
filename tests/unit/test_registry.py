"""The name -> builder registry: lazy modules, plug-in loaders and the errors users see."""

from __future__ import annotations

import pytest

from srnas_nni.errors import SRNASError
from srnas_nni.registry import Registry


def test_names_declared_by_module_are_listed_without_importing_it():
    registry = Registry("thing", modules={"json-thing": "json", "nowhere": "srnas_nni_no_such_module"})
    assert registry.names() == ["json-thing", "nowhere"]
    assert "nowhere" in registry
    with pytest.raises(ModuleNotFoundError):
        registry.lookup("nowhere")


def test_a_module_that_does_not_register_its_name_is_a_clear_error():
    registry = Registry("thing", modules={"json-thing": "json"})
    with pytest.raises(RuntimeError, match="json was expected to register thing 'json-thing'"):
        registry.lookup("json-thing")


def test_unknown_names_suggest_the_closest_and_list_all():
    registry = Registry("thing", modules={"alpha": "json"})
    registry.register("beta", 2)
    with pytest.raises(SRNASError, match=r"unknown thing 'alpah' \(did you mean 'alpha'\?\); available: alpha, beta"):
        registry.lookup("alpah")
