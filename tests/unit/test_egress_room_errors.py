"""The egress adapter's room request keeps a room's errors apart from egress's own: when the node
hosting a call's room died, livekit-server answers "no response from servers" for the room, which for
an egress request means egress is not running. The recorder fails a recording on EgressUnavailable, so
a call whose room is coming back on another node would lose its recording for a reason that is false."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from livekit import api

from phoneagent.config import Settings
from phoneagent.errors import EgressUnavailable, TelephonyError
from phoneagent.telephony.egress import LiveKitEgress


class _NoNodeForRoom(LiveKitEgress):
    def _api(self) -> Any:
        async def list_participants(_req: api.ListParticipantsRequest) -> None:
            raise api.TwirpError("unavailable", "twirp error unknown: no response from servers", status=503)

        return SimpleNamespace(room=SimpleNamespace(list_participants=list_participants))


async def test_a_room_no_node_answers_for_is_not_egress_missing(tmp_path: Path) -> None:
    egress = _NoNodeForRoom(Settings(state_dir=tmp_path))
    with pytest.raises(TelephonyError) as err:
        await egress.tracks("call-x")
    assert not isinstance(err.value, EgressUnavailable)
    assert err.value.no_response and err.value.retryable
