"""Helpers shared by test modules of both tiers (``tests/unit``, ``tests/integration``); no tests here.

Test modules import these (``from tests.support.images import smooth_image``), never each other.
"""
