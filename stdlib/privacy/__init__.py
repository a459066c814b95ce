"""Privacy classification of prompts: built-in detectors of sensitive data, keyword and regexp
rules, one RE2 scan over the prompt text, and redaction (used by the `privacy_router` service)."""

from .classify import LEVELS, Classifier, Decision
from .detectors import DETECTORS, Detector
from .scanner import Finding, Rule, Scanner

__all__ = ["DETECTORS", "LEVELS", "Classifier", "Decision", "Detector", "Finding", "Rule", "Scanner"]
