"""A single record operation in a repo commit: the ``ops`` of a ``#commit`` and the output of an MST diff.

Spec: atproto.com/specs/sync (``#repoOp``): ``action`` create|update|delete, ``path`` = ``<collection>/<rkey>``,
``cid`` the new record CID (None on delete), ``prev`` the previous record CID (set on update and delete).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from atstack.core.cid import CID

__all__ = ["Action", "RepoOp"]

Action = Literal["create", "update", "delete"]


@dataclass(frozen=True, slots=True)
class RepoOp:
    action: Action
    path: str
    cid: CID | None
    prev: CID | None = None

    # Written by hand (dataclass keeps it): the generated frozen __init__ goes through object.__setattr__
    # and then __post_init__, about twice the cost, and a relay builds one RepoOp per op of every commit.
    def __init__(self, action: Action, path: str, cid: CID | None, prev: CID | None = None) -> None:
        if action == "create":
            if cid is None or prev is not None:
                raise ValueError("create needs a cid and no prev")
        elif action == "update":
            if cid is None or prev is None:
                raise ValueError("update needs both cid and prev")
        elif action == "delete" and (cid is not None or prev is None):
            raise ValueError("delete needs a prev and no cid")
        _set_action(self, action)
        _set_path(self, path)
        _set_cid(self, cid)
        _set_prev(self, prev)


# The slots' own setters, which the frozen class's __setattr__ does not block.
_set_action: Any = RepoOp.action.__set__  # type: ignore[attr-defined]
_set_path: Any = RepoOp.path.__set__  # type: ignore[attr-defined]
_set_cid: Any = RepoOp.cid.__set__  # type: ignore[attr-defined]
_set_prev: Any = RepoOp.prev.__set__  # type: ignore[attr-defined]
