"""The kinds of strategies, reports and test sets, each declared once and registered by name.

The bottom layer of the planning code: it imports nothing of the library but errors.py, and every
module that plans, checks, prices, builds or reduces asks these registries what a kind is, instead
of comparing kind strings (tests/test_kinds.py greps for that)."""

from .registry import Registry, UnknownKind
from .reports import REPORTS, ReportKind
from .strategies import STRATEGIES, StrategyKind
from .test_sets import TEST_SETS, TestSetKind

__all__ = ["REPORTS", "STRATEGIES", "TEST_SETS", "Registry", "ReportKind", "StrategyKind", "TestSetKind",
           "UnknownKind"]
