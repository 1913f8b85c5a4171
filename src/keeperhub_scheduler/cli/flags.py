"""No ``<bool>`` label beside a flag in ``--help``.

Typer (0.29) labels every option's type in its rich help panel, flags included, so ``--once``,
``--json`` and ``--help`` showed a stray ``<bool>``: a flag takes no value, so there is nothing to
label. Patched once here, at import, because the label comes from Typer's own option class (the
``--help`` option too), which no ``typer.Option`` argument reaches.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperOption

_label = TyperOption.display_type_rich


def _no_flag_label(self: TyperOption, ctx: Any) -> str | None:
    return None if self.is_flag else _label(self, ctx)


TyperOption.display_type_rich = _no_flag_label  # type: ignore[method-assign]
