"""The HTTP batch's size shortcut: the smallest limit an empty event fits, found by bisection,
is exactly where ``check_deliverable`` starts to accept it."""

from __future__ import annotations

import pytest

from broker.errors import PayloadTooLarge
from broker.history.recovery import check_deliverable
from broker.router.publish_batch import _empty_needs


@pytest.mark.parametrize("epoch", [None, "0123456789abcdef", "é" * 40])
def test_the_empty_event_fits_from_its_need_on_and_not_below(epoch: str | None) -> None:
    need = _empty_needs(epoch)
    check_deliverable("", [], {}, epoch, need)
    check_deliverable("", [], {}, epoch, need + 1000)
    with pytest.raises(PayloadTooLarge):
        check_deliverable("", [], {}, epoch, need - 1)
    with pytest.raises(PayloadTooLarge):
        check_deliverable("", [], {}, epoch, need // 2)
