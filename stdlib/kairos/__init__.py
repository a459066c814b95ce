"""The AI routing policy's library: the prompt that asks a model to choose a service, the strict
reading of its answer, and the decision cache (used by the `kairos` service)."""

from .cache import DecisionCache
from .prompt import Candidate, RouterPrompt

__all__ = ["Candidate", "DecisionCache", "RouterPrompt"]
