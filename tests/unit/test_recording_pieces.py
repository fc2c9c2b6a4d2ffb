"""Small pieces of call recording: how egress's answers are read, byte ranges for object storage, the
merge pipeline's arguments, the S3 settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from livekit import api

from phoneagent.calls.recordings import _byte_range
from phoneagent.config import Settings
from phoneagent.errors import ConfigError, EgressUnavailable
from phoneagent.recording.merge import TrackFile, merge_pipeline
from phoneagent.telephony.client import translate
from phoneagent.telephony.egress import EgressState


def test_no_egress_to_take_a_request_is_egress_unavailable() -> None:
    for exc in (
        api.TwirpError("unavailable", "no response from servers", status=503),
        api.TwirpError("deadline_exceeded", "request timed out", status=504),
    ):
        err = translate(exc, egress=True)
        assert isinstance(err, EgressUnavailable) and err.no_response and err.retryable
    refused = api.TwirpError("invalid_argument", "no supported codec is compatible", status=400)
    assert not isinstance(translate(refused, egress=True), EgressUnavailable)


def test_egress_info_is_read_with_its_file_times_in_nanoseconds() -> None:
    info = api.EgressInfo(
        egress_id="EG_1",
        room_name="call-1",
        status=api.EgressStatus.EGRESS_COMPLETE,
        track=api.TrackEgressRequest(track_id="TR_1"),
        file_results=[
            api.FileInfo(
                filename="/r/caller.ogg",
                started_at=10**18,
                ended_at=10**18 + 5 * 10**9,
                duration=5 * 10**9,
                size=4000,
            )
        ],
    )
    st = EgressState.from_info(info)
    assert (st.status, st.ended, st.track_id, st.filename) == ("complete", True, "TR_1", "/r/caller.ogg")
    assert (st.file_started_ns, st.file_duration_ns, st.file_size) == (10**18, 5 * 10**9, 4000)
    active = EgressState.from_info(api.EgressInfo(egress_id="EG_2", status=api.EgressStatus.EGRESS_ACTIVE))
    assert (active.status, active.ended, active.file_started_ns) == ("active", False, None)


@pytest.mark.parametrize(
    ("header", "want"),
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-10", (990, 999)),
        ("bytes=5-5000", (5, 999)),
        ("bytes=1000-", False),
        ("bytes=9-3", False),
        ("bytes=-0", False),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_one_byte_range_is_served_several_are_not_and_unsatisfiable_is_416(
    header: str | None, want: object
) -> None:
    assert _byte_range(header, 1000) == want


def test_merge_pipeline_places_tracks_by_start_and_cuts_at_the_end() -> None:
    c, a = TrackFile(Path("/t/c.ogg"), 1_000_000_000), TrackFile(Path("/t/a.ogg"), 1_500_000_000)
    args = merge_pipeline(c, a, Path("/t/out.ogg"), "dual", end_ns=4_000_000_000)
    assert args[:5] == [
        "audiointerleave",
        "name=m",
        "output-buffer-duration=10000000",
        "sink_0::offset=0",
        "sink_1::offset=500000000",
    ]
    assert "eos-after=300" in args  # 3 s of 10 ms blocks
    assert args.index("location=/t/c.ogg") < args.index("m.sink_0") < args.index("location=/t/a.ogg")
    mixed = merge_pipeline(c, a, Path("/t/out.ogg"), "mixed")
    assert (
        mixed[0] == "audiomixer"
        and "audio/x-raw,channels=1" in mixed
        and not any("eos-after" in x for x in mixed)
    )


def test_s3_storage_needs_a_bucket() -> None:
    with pytest.raises(ValueError, match="s3_bucket"):
        Settings(recording_storage="s3")
    assert Settings(recording_storage="s3", s3_bucket="b").s3_prefix == "recordings/"


def test_s3_endpoint_must_be_http(tmp_path: Path) -> None:
    from phoneagent.recording.storage import S3Store

    with pytest.raises(ConfigError, match="s3_endpoint"):
        S3Store(Settings(state_dir=tmp_path, recording_storage="s3", s3_bucket="b", s3_endpoint="ftp://x"))
