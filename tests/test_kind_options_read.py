"""Every option of every kind acts (the project's rule: what compiles, runs).

tests/compiler/test_config_keys.py holds the schema's own keys to a list of where the runtime
reads them. A kind's options (a middleware's `rate`, an executor's `command`) are validated by
the kind's config model instead, so they are checked here: each field must be read somewhere a
kind can read it, as an attribute (`config.rate`) or by name (`"rate"`), in the kind's
implementation module, the private helpers beside it (`_*.py`), its declaration (validators
that derive values) or stdlib/common/, the kinds' shared library. A new option that nothing reads fails this test; a kind whose option is
not available yet must refuse it in its model instead.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, create_model

from a3s_gateway.stdlib import registry

STDLIB = Path(registry.__file__).resolve().parent
COMMON = "\n".join(p.read_text() for p in sorted((STDLIB / "common").glob("*.py")))
OPTION_KINDS = [
    k for k in registry.kinds() if k.category in ("middleware", "balancer", "executor", "provider")
]


def _sources(kind: registry.Kind) -> str:
    kind.impl  # noqa: B018 - imports the implementation module
    impl_path = Path(sys.modules[kind.module].__file__ or "")
    # The private helpers beside the implementation (stdlib/channels/_webhook.py reads the
    # options every channel kind shares) are the kind's own library, as common/ is everyone's.
    helpers = [p.read_text() for p in sorted(impl_path.parent.glob("_*.py")) if p.name != "__init__.py"]
    declaration = Path(sys.modules[kind.config.__module__].__file__ or "").read_text()
    return "\n".join((impl_path.read_text(), *helpers, declaration, COMMON))


def _unread(kind: registry.Kind, model: type[BaseModel]) -> list[str]:
    sources = _sources(kind)
    return [name for name in model.model_fields if not re.search(rf"\.{name}\b|[\"']{name}[\"']", sources)]


@pytest.mark.parametrize("kind", OPTION_KINDS, ids=lambda k: f"{k.category}:{k.name}")
def test_every_option_of_the_kind_is_read(kind: registry.Kind) -> None:
    unread = _unread(kind, kind.config)
    assert not unread, f"{kind.category} {kind.name!r}: options nothing reads: {unread}"


def test_the_check_sees_an_unread_option() -> None:
    kind = registry.lookup("middleware", "rate-limit")
    assert kind is not None
    grown = create_model("Grown", __base__=kind.config, never_read_option=(int, 0))
    assert _unread(kind, grown) == ["never_read_option"]
