"""REGISTER in the reserved namespaces is refused before crossbar looks anything up.

Why: crossbar 26.10's ``Dealer.processRegister`` asks the authorizer, but when
the answer is "no" it builds the ``not_authorized`` reply and goes on to look
the procedure up: a REGISTER of ``broker.reload`` (which Broker registered)
is answered ``wamp.error.procedure_already_exists``, one of
``broker.nonexistent`` ``wamp.error.not_authorized`` — any client can map which
reserved procedures exist. (``wamp.*`` is refused with ``invalid_uri`` before
authorization, another answer again.) Broker refuses every registration that
could take a name under ``wamp.`` or ``broker.`` from any role but the node's
own (:func:`broker.core.grants.reserved_registration`) first, with one
``wamp.error.not_authorized`` whose message depends only on the request, and
counts it as ``NotAuthorized``. A CALL needs no such rule: crossbar authorizes
it before the lookup, so a role without a grant gets the same
``not_authorized`` whether the procedure exists or not.

Item 11 of the index in :mod:`broker.router.crossbar`. Wraps
``crossbar/router/dealer.py: Dealer.processRegister``. Tests: ``tests/test_roles.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from autobahn.wamp import message
from crossbar.router.dealer import Dealer

from broker.core.grants import reserved_registration
from broker.core.uris import Match
from broker.router import metrics

if TYPE_CHECKING:
    from broker.router.state import NodeState


def _make_process_register(state: NodeState, original: Any) -> Any:
    def process_register(self: Any, session: Any, register: message.Register) -> None:
        refusal = reserved_registration(session._authrole, register.procedure, cast(Match, register.match))
        if refusal is None:
            original(self, session, register)
            return
        state.count_rejection(metrics.NOT_AUTHORIZED)
        reply = message.Error(
            message.Register.MESSAGE_TYPE, register.request, refusal.wamp_uri, [str(refusal)]
        )
        self._router.send(session, reply)

    return process_register


def install(state: NodeState) -> None:
    """Put the reserved-namespace check in front of crossbar's REGISTER handling."""
    Dealer.processRegister = _make_process_register(state, Dealer.processRegister)  # type: ignore[method-assign]
