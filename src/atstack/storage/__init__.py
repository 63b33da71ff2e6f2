"""Storage backends behind small interfaces; SQLite (:mod:`.sqlite`) is the embedded default."""

from atstack.storage.sqlite import Database, Migration, split_statements

__all__ = ["Database", "Migration", "split_statements"]
