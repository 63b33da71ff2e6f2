"""Lexicon: loading schema documents and validating records, XRPC parameters/bodies and stream messages.

Spec: atproto.com/specs/lexicon (with atproto.com/specs/data-model, /xrpc, /record-key, /permission).

- :mod:`.schema` checks lexicon documents themselves (:class:`LexiconError`);
- :mod:`.catalog` holds a set of documents (:class:`Lexicons`), resolves ``nsid#name`` references and is the
  validation entry point;
- :mod:`.validate` compiles definitions into validator closures (:class:`ValidationError` on bad data);
- :mod:`.params` decodes XRPC query parameters; :mod:`.formats` maps string formats to syntax checks.
"""

from atstack.core.lexicon.catalog import Lexicons, load_lexicon_dir
from atstack.core.lexicon.errors import LexiconError, ValidationError

__all__ = ["LexiconError", "Lexicons", "ValidationError", "load_lexicon_dir"]
