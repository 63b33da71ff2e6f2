"""Pure AT Protocol core: syntax, data model, DRISL, CID, crypto, TID, CAR, MST, commits, lexicon.

No I/O and no asyncio here; every service imports it.
"""
