"""The PDS's XRPC handlers, one module per namespace or concern.

Every module here whose name does not start with ``_`` must expose ``register(router, ctx)``: it adds its
routes to the :class:`~atstack.xrpc.server.XRPCRouter` (``@router.query(nsid, auth=ctx.auth.…)``,
``@router.procedure(…)``) and may mount plain HTTP routes with ``ctx.add_http_route``. :func:`register_all`
imports and registers every such module in name order, so adding a namespace means adding a file —
nothing else to edit. Shared helpers go in ``_``-prefixed modules (:mod:`._util`).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from atstack.xrpc.server import XRPCRouter

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = ["handler_modules", "register_all"]


def handler_modules() -> list[str]:
    """Names of the handler modules, in registration order."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def register_all(router: XRPCRouter, ctx: PdsContext) -> list[str]:
    names = handler_modules()
    for name in names:
        module = importlib.import_module(f"{__name__}.{name}")
        register = getattr(module, "register", None)
        if register is None:
            raise RuntimeError(f"handler module {module.__name__} has no register(router, ctx)")
        register(router, ctx)
    return names
