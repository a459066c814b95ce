"""Scaling: the Knative-style autoscaler, the cold-start buffer, revisions and rollouts.

The autoscaler kind is `kpa` (stdlib/scalers/kpa.py), reached through the registry. The rest is
the library the runtime's scaled services are built from; see docs/scaling.md.

* `ColdStartBuffer` (_buffer.py): the activator's queue in front of a scaled service.
* `RolloutState`, `transition` and events (_rollout.py): the rollout state machine.
* `RevisionStats`, `split_traffic`, `pick_revision`, `pinned_revision` (_revisions.py).
* `Scaler` (_scaler.py): KPA + executor + buffer of one service, and the loop driving them.
* `scaling_front`, `ScalingFront` (_front.py): what the graph plugs into a service with `scaling`
  or `revisions`; `RevisionSet` (_revision_set.py): the revisions, their numbers and the rollout;
  `serve_scaled`, `ServicePath` (_serve.py): one request on a scaled unit.
"""

from ._buffer import Admission, BufferStatistics, ColdStartBuffer, Lease, Picker, Ticket
from ._front import ScalingFront, scaling_front
from ._revision_set import RevisionSet
from ._revisions import RevisionStats, pick_revision, pinned_revision, split_traffic
from ._rollout import TRANSITIONS, Abort, Phase, RolloutState, Start, StepStats, Tick, transition
from ._scaler import Scaler
from ._serve import ServicePath, serve_scaled
from ._window import ConcurrencyMeter, MaxWindow, WindowAverage

__all__ = [
    "TRANSITIONS",
    "Abort",
    "Admission",
    "BufferStatistics",
    "ColdStartBuffer",
    "ConcurrencyMeter",
    "Lease",
    "MaxWindow",
    "Phase",
    "Picker",
    "RevisionSet",
    "RevisionStats",
    "RolloutState",
    "Scaler",
    "ScalingFront",
    "ServicePath",
    "Start",
    "StepStats",
    "Tick",
    "Ticket",
    "WindowAverage",
    "pick_revision",
    "pinned_revision",
    "scaling_front",
    "serve_scaled",
    "split_traffic",
    "transition",
]
