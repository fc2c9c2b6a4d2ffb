"""The stack ports a benchmark moves away from the defaults (so it can run beside a development stack),
typed key by key so that ``Settings(**ports)`` is checked against the settings' fields."""

from __future__ import annotations

from typing import TypedDict


class StackPorts(TypedDict):
    redis_port: int
    livekit_port: int
    livekit_rtc_tcp_port: int
    livekit_rtc_udp_start: int
    livekit_rtc_udp_end: int
    sip_port: int
    sip_rtp_start: int
    sip_rtp_end: int
    worker_http_port: int
    worker_metrics_port: int
    livekit_prometheus_port: int
    api_port: int
