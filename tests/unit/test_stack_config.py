"""The generated configs: loopback only, no STUN/public-IP lookup, secrets in place, 0600."""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import pytest
import yaml

from phoneagent.config import Settings
from phoneagent.errors import PortInUseError
from phoneagent.stack import ports
from phoneagent.stack.services import Service, Stack, sip_options_ok
from phoneagent.stack.versions import EGRESS


def _stack(tmp_path: Path) -> Stack:
    return Stack(Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", sip_port=5070))


def test_configs_render_for_every_service(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    services = stack.services()
    assert [s.name for s in services] == ["redis", "livekit-server", "livekit-sip", "egress"]
    sec = stack.secrets()
    conf = stack.paths.conf

    sip = yaml.safe_load((conf / "livekit-sip.yaml").read_text())
    assert sip["nat_1_to_1_ip"] == "127.0.0.1" and sip["listen_ip"] == "127.0.0.1"
    assert "use_external_ip" not in sip  # it would ask a public STUN server
    assert sip["sip_port"] == 5070 and sip["rtp_port"] == "10000-10499"
    assert sip["redis"]["password"] == sec.redis_password
    assert (sip["api_key"], sip["api_secret"]) == (sec.livekit_api_key, sec.livekit_api_secret)
    assert sip["health_port"] == 0  # v1.8.0 binds it on every interface; stack up asks the SIP port
    assert sip["prometheus_port"] == 0  # the same: off unless PHONEAGENT_SIP_PROMETHEUS_PORT is set

    lk = yaml.safe_load((conf / "livekit.yaml").read_text())
    assert lk["rtc"]["use_external_ip"] is False and lk["rtc"]["node_ip"] == "127.0.0.1"
    assert lk["bind_addresses"] == ["127.0.0.1"]
    assert lk["rtc"]["tcp_port"] == 0  # its ICE-over-TCP mux would listen on every interface
    assert lk["keys"] == {sec.livekit_api_key: sec.livekit_api_secret}
    # clients get a loopback STUN server, never livekit-server's default (Google's)
    assert all(u.startswith("127.0.0.1:") for u in lk["rtc"]["stun_servers"])
    # a worker is offered jobs until it reports full (load 1.0), not only under livekit's default 0.7
    assert lk["agents"]["target_load"] == 1.0
    # its Prometheus server listens on bind_addresses (loopback here), like its API
    assert lk["prometheus"] == {"port": 6789}
    # who is in a room is asked of the room's node: Redis keeps a dead node's participants
    assert lk["api"] == {"enable_psrpc_for_get_list_participants": True}

    assert sip["ws_url"] == "ws://127.0.0.1:7880"
    eg = yaml.safe_load((conf / "egress.yaml").read_text())
    assert eg["ws_url"] == "ws://127.0.0.1:7880" and eg["redis"]["address"] == "127.0.0.1:6389"
    assert (eg["api_key"], eg["api_secret"]) == (sec.livekit_api_key, sec.livekit_api_secret)
    assert eg["redis"]["password"] == sec.redis_password
    # its health, Prometheus, template and debug servers would bind every interface: all off
    assert eg["health_port"] == eg["prometheus_port"] == eg["template_port"] == eg["debug_handler_port"] == 0
    # several track recordings fit on 2 cores, and a busy machine never gets a recording killed
    assert eg["cpu_cost"]["track_cpu_cost"] * 10 <= 2 and eg["cpu_cost"]["max_cpu_utilization"] == 1.0

    redis = (conf / "redis.conf").read_text()
    assert f"requirepass {sec.redis_password}" in redis and "bind 127.0.0.1" in redis

    for f in conf.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_services_check_every_port_they_use(tmp_path: Path) -> None:
    s = _stack(tmp_path)
    by_name = {svc.name: svc for svc in s.services()}
    assert by_name["livekit-sip"].udp_ports == [5070] and 5070 in by_name["livekit-sip"].tcp_ports
    assert by_name["livekit-sip"].udp_pools == [range(10000, 10500)]  # RTP, a port per call
    assert by_name["livekit-server"].udp_ports == []
    assert by_name["livekit-server"].udp_pools == [range(50000, 50100)]  # WebRTC, per participant
    # API and Prometheus; no ICE over TCP: it would bind every interface
    assert by_name["livekit-server"].tcp_ports == [7880, 6789]
    egress = by_name["egress"]
    assert egress.tcp_ports == egress.udp_ports == []  # it listens on nothing
    # its handlers are `egress run-handler` found on PATH, with scratch space inside the state dir
    assert egress.env["PATH"].split(":")[0] == str(s.paths.binary(EGRESS).parent)
    assert egress.prepare is not None
    egress.prepare()  # makes the scratch dir (and a short link to it when its path is long)
    tmpdir = Path(egress.env["TMPDIR"])
    assert tmpdir.resolve().is_relative_to(s.paths.state.resolve())
    if tmpdir.is_symlink():
        tmpdir.unlink()


def test_egress_scratch_dir_deep_in_the_file_system_is_reached_through_a_short_link(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 90)
    stack = Stack(Settings(state_dir=deep / "state", cache_dir=tmp_path / "cache"))
    egress = {svc.name: svc for svc in stack.services()}["egress"]
    tmpdir = Path(egress.env["TMPDIR"])
    # egress binds Unix sockets (at most 107 bytes) at $TMPDIR/EGH_<12>/handler_ipc.sock
    assert len(str(tmpdir / "EGH_xxxxxxxxxxxx" / "handler_ipc.sock")) <= 107
    assert egress.prepare is not None
    egress.prepare()
    assert tmpdir.is_symlink() and tmpdir.resolve() == (deep / "state" / "egress").resolve()
    tmpdir.unlink()


def _sip_server(answer: bytes | None) -> tuple[socket.socket, threading.Thread]:
    """A UDP socket on loopback that answers one request with ``answer`` (its Call-ID line copied in)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(3.0)

    def serve() -> None:
        try:
            data, peer = sock.recvfrom(4096)
        except OSError:
            return
        call_id = next(line for line in data.split(b"\r\n") if line.startswith(b"Call-ID:"))
        if answer is not None:
            sock.sendto(answer + b"\r\n" + call_id + b"\r\n\r\n", peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock, thread


@pytest.mark.parametrize(
    ("answer", "healthy"),
    [(b"SIP/2.0 200 OK", True), (b"SIP/2.0 503 Service Unavailable", False), (None, False)],
)
def test_livekit_sips_health_is_an_options_answered_200(answer: bytes | None, healthy: bool) -> None:
    sock, thread = _sip_server(answer)
    try:
        assert sip_options_ok("127.0.0.1", sock.getsockname()[1], timeout_s=0.5) is healthy
    finally:
        thread.join(5)
        sock.close()


def test_nothing_listening_is_not_healthy() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    assert sip_options_ok("127.0.0.1", port, timeout_s=0.5) is False


def test_livekits_prometheus_ports_follow_the_settings(tmp_path: Path) -> None:
    """Each of LiveKit's Prometheus servers is on where its setting names a port, off (0) where not,
    and a port that is on is checked before the start like the service's others."""
    stack = Stack(
        Settings(
            state_dir=tmp_path / "state",
            cache_dir=tmp_path / "cache",
            livekit_prometheus_port=0,
            sip_prometheus_port=9101,
            egress_prometheus_port=9102,
        )
    )
    by_name = {svc.name: svc for svc in stack.services()}
    conf = stack.paths.conf
    assert yaml.safe_load((conf / "livekit.yaml").read_text())["prometheus"] == {"port": 0}
    assert yaml.safe_load((conf / "livekit-sip.yaml").read_text())["prometheus_port"] == 9101
    assert yaml.safe_load((conf / "egress.yaml").read_text())["prometheus_port"] == 9102
    assert by_name["livekit-server"].tcp_ports == [7880]
    assert 9101 in by_name["livekit-sip"].tcp_ports and by_name["egress"].tcp_ports == [9102]
    assert stack.settings.prometheus_ports == (9101, 9102)


def test_the_bridge_and_egress_reach_livekit_through_the_front_url_when_one_is_set(tmp_path: Path) -> None:
    """With several livekit-server nodes the bridge and egress join rooms through the balancer in
    front of them (a client of a node that dies rejoins through it); the node still listens on its own
    port. A front URL that is not a WebSocket URL is refused, naming the setting."""
    front = "ws://lk.internal:7880"
    settings = Settings(
        state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", livekit_front_url=front + "/"
    )
    stack = Stack(settings)
    by_name = {svc.name: svc for svc in stack.services()}
    conf = stack.paths.conf
    assert settings.livekit_url == front
    assert yaml.safe_load((conf / "livekit-sip.yaml").read_text())["ws_url"] == front
    assert yaml.safe_load((conf / "egress.yaml").read_text())["ws_url"] == front
    assert yaml.safe_load((conf / "livekit.yaml").read_text())["port"] == 7880
    assert 7880 in by_name["livekit-server"].tcp_ports
    for bad in ("http://lk.internal:7880", "lk.internal:7880", "ws://"):
        with pytest.raises(ValueError, match="livekit_front_url"):
            Settings(state_dir=tmp_path / "state", livekit_front_url=bad)


def _free_udp_range(size: int) -> range:
    """``size`` consecutive UDP ports on loopback that are free now."""
    for start in range(47000, 48000, size):
        pool = range(start, start + size)
        if all(ports.is_free("127.0.0.1", port, "udp") for port in pool):
            return pool
    raise AssertionError("no free UDP ports for the test")


def test_a_per_call_port_range_with_some_ports_held_still_lets_the_service_start(tmp_path: Path) -> None:
    """livekit-server and livekit-sip take a port of their range per call and try the next one when
    one is held: a port of the range that another process sits on (any outgoing UDP socket may get one
    of Linux's ephemeral ports) is reported, not fatal; a range held in full is."""
    stack = _stack(tmp_path)
    pool = _free_udp_range(4)
    svc = Service(name="media", argv=["true"], health=lambda: True, udp_pools=[pool])
    said: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as one:
        one.bind(("127.0.0.1", pool.start + 1))
        stack._check_ports(svc, said.append)
    span = f"UDP ports {pool.start}-{pool.stop - 1}"
    assert len(said) == 1 and said[0].startswith(f"media: 1 of its {span} held by pid "), said
    assert said[0].endswith("; it uses the others"), said

    held = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in pool]
    try:
        for s, port in zip(held, pool, strict=True):
            s.bind(("127.0.0.1", port))
        with pytest.raises(PortInUseError) as err:
            stack._check_ports(svc, said.append)
    finally:
        for s in held:
            s.close()
    assert f"every one is held (by pid {os.getpid()} (" in err.value.message

    said.clear()
    stack._check_ports(svc, said.append)  # all free: nothing to say
    assert said == []
