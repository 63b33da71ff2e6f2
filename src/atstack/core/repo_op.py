"""A single record operation in a repo commit: the ``ops`` of a ``#commit`` and the output of an MST diff.

Spec: atproto.com/specs/sync (``#repoOp``): ``action`` create|update|delete, ``path`` = ``<collection>/<rkey>``,
``cid`` the new record CID (None on delete), ``prev`` the previous record CID (set on update and delete).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from atstack.core.cid import CID

__all__ = ["Action", "RepoOp"]

Action = Literal["create", "update", "delete"]


@dataclass(frozen=True, slots=True)
class RepoOp:
    action: Action
    path: str
    cid: CID | None
    prev: CID | None = None

    def __post_init__(self) -> None:
        if self.action == "create" and (self.cid is None or self.prev is not None):
            raise ValueError("create needs a cid and no prev")
        if self.action == "update" and (self.cid is None or self.prev is None):
            raise ValueError("update needs both cid and prev")
        if self.action == "delete" and (self.cid is not None or self.prev is None):
            raise ValueError("delete needs a prev and no cid")
