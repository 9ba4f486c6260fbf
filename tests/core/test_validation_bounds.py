"""bmcd.core.validation: error lists stay short whatever the body."""

from __future__ import annotations

import pytest

from bmcd.core.errors import RedfishError
from bmcd.core.validation import MAX_MESSAGES, check_properties


def test_many_unknown_properties_give_a_bounded_answer() -> None:
    body = {f"Unknown{i}": i for i in range(5000)}
    with pytest.raises(RedfishError) as raised:
        check_properties("SessionService", body, ("SessionTimeout",))
    keys = [m.key for m in raised.value.messages]
    assert len(keys) == MAX_MESSAGES
    assert keys[-1] == "MaximumErrorsExceeded"
    assert keys[0] == "PropertyUnknown"
