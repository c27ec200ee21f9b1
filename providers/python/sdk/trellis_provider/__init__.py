"""Trellis capability providers in Python: wRPC over NATS, as Trellis hosts call them.

Declare the provider's functions with the WIT types of :mod:`trellis_provider.wit`,
then call :meth:`Provider.main`; see providers/python/README.md and docs/providers.md.
"""

from .caller import Caller, CallerError
from .provider import Call, Provider
from .transports import CallFailed, Limits

__all__ = ["Call", "CallFailed", "Caller", "CallerError", "Limits", "Provider"]
