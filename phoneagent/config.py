"""Every knob of phoneagent, read once from the environment (``PHONEAGENT_*``) or ``.env``.

Call :func:`get_settings`; nothing here reads the environment at import time.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from phoneagent.errors import ConfigError
from phoneagent.netguard import AddressPolicy, check_sip_host, parse_networks
from phoneagent.public_mode import check_public_mode
from phoneagent.secret_files import read_secret_file
from phoneagent.telephony.destinations import DENIED_BY_DEFAULT, TYPE_NAMES, NumberPolicy
from phoneagent.urls import check_http_url

Mode = Literal["local", "api", "hybrid"]
# the API providers of each component (phoneagent.speech.plugins makes them)
SttProvider = Literal["deepgram", "openai", "assemblyai", "groq"]
TtsProvider = Literal["deepgram", "openai", "elevenlabs", "cartesia"]
STT_PROVIDERS: tuple[str, ...] = get_args(SttProvider)
TTS_PROVIDERS: tuple[str, ...] = get_args(TtsProvider)
# the variable that holds each API provider's key
KEY_VARS = {
    "deepgram": "DEEPGRAM_API_KEY",
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "elevenlabs": "ELEVENLABS_API_KEY",
    "cartesia": "CARTESIA_API_KEY",
    "assemblyai": "ASSEMBLYAI_API_KEY",
    "groq": "GROQ_API_KEY",
}


def _home_dir(kind: str) -> Path:
    base = {"state": Path.home() / ".local" / "state", "cache": Path.home() / ".cache"}[kind]
    return base / "phoneagent"


@dataclass(frozen=True)
class TurnTiming:
    vad_silence_s: float  # silence before the VAD calls the end of an utterance
    min_delay_s: float  # wait after it when the turn sounds over
    max_delay_s: float  # the longest wait when it does not


# per turn detection mode, from benchmarks/latency (BENCHMARKS.md, "Latency"); vad and turn-detector
# keep the timings they had before adaptive endpointing (0.45 s of silence: the VAD alone cannot tell
# a thinking pause from the end)
TURN_TIMING = {
    "adaptive": TurnTiming(vad_silence_s=0.2, min_delay_s=0.0, max_delay_s=1.2),
    "vad": TurnTiming(vad_silence_s=0.45, min_delay_s=0.1, max_delay_s=1.5),
    "turn-detector": TurnTiming(vad_silence_s=0.45, min_delay_s=0.1, max_delay_s=1.5),
}


def _strong_session_secret(v: SecretStr) -> SecretStr:
    if v.get_secret_value() and len(v.get_secret_value()) < 32:
        raise ValueError("session_secret must be at least 32 characters (or empty: generated)")
    return v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PHONEAGENT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # where the running stack keeps its generated config, keys, pid files and logs
    state_dir: Path = Field(default_factory=lambda: _home_dir("state"))
    # where built binaries are cached, keyed by pinned version (outside any clone)
    cache_dir: Path = Field(default_factory=lambda: _home_dir("cache"))

    bind_host: str = "127.0.0.1"
    redis_port: int = 6389
    livekit_port: int = 7880
    # no longer a listening port (ICE over TCP is off: livekit-server would bind it on every interface);
    # the address handed to clients as their STUN server, where nothing answers
    livekit_rtc_tcp_port: int = 7881
    livekit_rtc_udp_start: int = 50000
    livekit_rtc_udp_end: int = 50099
    sip_port: int = 5060
    sip_rtp_start: int = 10000
    # each call holds one RTP port for its length plus livekit-sip's 30 s of draining afterwards (late
    # packets); a range that runs out makes livekit-sip v1.8 crash on the next call (nil media port)
    sip_rtp_end: int = 10499
    # livekit-sip's load shedding: above this CPU share it refuses new outbound calls (see the template)
    sip_max_cpu_utilization: float = Field(default=1.0, gt=0.0, le=1.0)
    worker_http_port: int = 8081
    # the worker's Prometheus metrics (phoneagent.worker.metrics), on bind_host
    worker_metrics_port: int = 8082
    # LiveKit's own Prometheus metrics (deploy/monitoring.md); 0: off. livekit-server serves them on
    # bind_host like its API; livekit-sip v1.8.0 and egress v1.8.6 bind theirs on every interface
    # (":port"), so the loopback stack leaves them off unless set
    livekit_prometheus_port: int = Field(default=6789, ge=0, le=65535)
    sip_prometheus_port: int = Field(default=0, ge=0, le=65535)
    egress_prometheus_port: int = Field(default=0, ge=0, le=65535)
    api_port: int = 8000
    # where `phoneagent api` and the worker's health and metrics servers listen; empty: bind_host. In a
    # container (deploy/helm, deploy/compose) 0.0.0.0: the pod's own network is the boundary there,
    # and the kubelet's probes and Prometheus reach the pod's address, not its loopback
    listen_host: str = ""

    health_timeout_s: float = 60.0

    # empty: SQLite at <state_dir>/phoneagent.db; PostgreSQL: postgresql://user:pass@host/db
    database_url: str = ""

    agent_name: str = "phoneagent"
    greeting: str = (
        "Hello, thank you for calling. This is your phone agent speaking. How can I help you today?"
    )
    # the number the dev stack's inbound trunk and dispatch rule answer
    dev_number: str = "+15550100"

    # more receivers of LiveKit's webhooks besides this machine's control plane (comma-separated)
    extra_webhook_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # where workers send call events; empty: this machine's control plane
    control_plane_url: str = ""
    # where livekit-sip, egress, the workers and the control plane reach LiveKit (ws:// or wss://);
    # empty: this node's own port. With several livekit-server nodes, a balancer in front of them: a
    # client that reached a node that dies reconnects through it to one that lives
    livekit_front_url: str = ""
    # calls one worker takes at once; its load (active calls / this) is what LiveKit dispatch sees, so
    # unrelated CPU use on the machine does not make the worker refuse calls; a call beyond it gets a
    # busy signal (486). Unset: from benchmarks/latency (BENCHMARKS.md, "Latency"): with shared speech
    # models, 4 simultaneous calls on 2 cores kept voice-to-voice p95 under 1.2 s at the wire, so two
    # calls per core; each job process loading its own models, one call per two cores, plus one.
    max_concurrent_calls: int | None = Field(default=None, ge=1, le=64)
    # End of the caller's turn (defaults from benchmarks/latency, see BENCHMARKS.md, "Latency"):
    # Silero VAD calls the end of an utterance after vad_min_silence_s of silence; the turn then ends
    # endpointing_min_delay_s later, or up to endpointing_max_delay_s later when the words are
    # unfinished. Local Whisper has started on the utterance already (speculative_stt).
    # adaptive: the wait follows what the caller said (phoneagent.worker.endpoint): none after a
    #   request the brain understands, up to the maximum after plainly unfinished words;
    # vad: a fixed silence; turn-detector: LiveKit's local audio end-of-turn model (v1-mini, weights
    #   inside livekit-local-inference: no hub, no cloud).
    # Unset timings take the mode's own (TURN_TIMING).
    turn_detection: Literal["adaptive", "vad", "turn-detector"] = "adaptive"
    endpointing_min_delay_s: float | None = Field(default=None, ge=0.0, le=3.0)
    endpointing_max_delay_s: float | None = Field(default=None, ge=0.2, le=6.0)
    vad_min_silence_s: float | None = Field(default=None, ge=0.1, le=3.0)
    # the caller's speech that interrupts the agent (barge-in): this long, by the VAD (livekit-agents'
    # own default is 0.5 s); the agent pauses, and resumes if the sound carried no words
    barge_in_min_speech_s: float = Field(default=0.12, ge=0.05, le=2.0)
    # local Whisper starts on an utterance after a short silence instead of at the VAD's end of speech
    # (phoneagent.speech.speculative); the transcript is the same, it is ready sooner
    speculative_stt: bool = True
    # the raw silence after which local Whisper starts its guess; unset: a quarter of the VAD's silence
    # (a guess then has the rest of it to finish: benchmarks/latency, BENCHMARKS.md "Latency")
    speculate_after_s: float | None = Field(default=None, ge=0.02, le=2.0)
    # one set of local speech models (Whisper, Piper) per worker host, in a process of its own that
    # every call's job process asks (phoneagent.speech.shared); false: each job process loads its own
    shared_models: bool = True
    # Whisper decodes the shared models run at once (CTranslate2 replicas of one thread each)
    whisper_workers: int = Field(default=2, ge=1, le=16)
    # set by the worker for its job processes: where its shared models answer
    speech_socket: Path | None = None
    # the control plane's background work: dialing queued calls, sending webhooks, the sweeper,
    # campaigns. Replicas on one PostgreSQL elect one to lead the work that must run once
    # (phoneagent.calls.leader); false: this process serves the API alone.
    background: bool = True
    # outbound calls one tenant has dialing, ringing or in progress at once; more wait in the queue
    max_calls_per_tenant: int = Field(default=20, ge=1, le=10_000)
    # an in-progress call with no agent in its room for this long ends as worker_lost
    worker_lost_after_s: float = Field(default=15.0, ge=1.0, le=600.0)
    # ... unless its agent never joined and a worker holds its job (its process is starting): this
    # long, counted the same way (never less than worker_lost_after_s)
    agent_arrival_after_s: float = Field(default=30.0, ge=1.0, le=600.0)
    sweep_interval_s: float = Field(default=2.0, ge=0.2, le=60.0)
    # a live call whose room no livekit-server node answers for (its node died and no participant
    # brought the room back on another node) this long ends as media_node_lost. Clients notice a dead
    # node and rejoin through the front in 4-9 s (the cluster test's runs), which restores the room
    media_node_lost_after_s: float = Field(default=30.0, ge=5.0, le=600.0)
    # an inbound call that no worker took (LiveKit assigned no agent job) this long after its phone
    # joined is refused with a busy signal as over_capacity
    unserved_after_s: float = Field(default=1.5, ge=0.2, le=60.0)
    # ... after its agent dispatch was offered to the workers again this many times, each waiting
    # unserved_after_s (also an outbound call's). With several livekit-server nodes a job can be refused
    # by one node's workers while another's are free; a site with one node may set 0 (a quicker busy)
    unserved_reoffers: int = Field(default=1, ge=0, le=3)
    # how often the background work re-creates SIP trunks and rules missing from LiveKit (and at start)
    provisioning_check_interval_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    # outgoing webhooks: attempts before a delivery is dead, first retry delay (each next one 3x)
    webhook_max_attempts: int = Field(default=8, ge=1, le=30)
    webhook_retry_base_s: float = Field(default=10.0, ge=0.05, le=3600.0)
    # call.ended waits this long for the last transcript turns before it is rendered and sent
    webhook_ended_grace_s: float = Field(default=3.0, ge=0.0, le=120.0)
    # tenants' webhook URLs reach public addresses only; networks listed here (comma-separated CIDRs)
    # are allowed besides, e.g. an internal receiver, or 127.0.0.0/8 on a developer's machine
    webhook_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # plain http:// webhook URLs are refused unless this is off (phoneagent dev turns it off)
    webhook_require_https: bool = True
    # carrier trunks' addresses are public ones; networks listed here (comma-separated CIDRs) are
    # allowed besides, e.g. a private PBX (the stack's own listeners are refused even then)
    trunk_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # replays of webhook deliveries one tenant may ask for per minute (429 with Retry-After beyond)
    webhook_replays_per_minute: int = Field(default=10, ge=1, le=10_000)
    # per tenant: POST /calls and POST /campaigns a minute, and outbound calls waiting in the queue
    # (429 with Retry-After beyond each)
    calls_per_minute: int = Field(default=600, ge=1, le=100_000)
    campaigns_per_minute: int = Field(default=30, ge=1, le=10_000)
    max_queued_calls_per_tenant: int = Field(default=1000, ge=1, le=1_000_000)
    # the largest request body the control plane reads (413 beyond), and how many of each kind of
    # resource one tenant may have (403 beyond): agent profiles, trunks, rules, numbers, webhook
    # endpoints, campaigns
    max_request_bytes: int = Field(default=2 * 1024 * 1024, ge=16 * 1024, le=1024 * 1024 * 1024)
    max_resources_per_tenant: int = Field(default=500, ge=1, le=1_000_000)
    max_webhook_endpoints_per_tenant: int = Field(default=20, ge=1, le=10_000)
    # toll fraud: number types no call (outbound, campaign contact, transfer) may go to, and the
    # countries calls may go to (ISO 3166 codes, comma-separated; empty: any)
    call_number_types_denied: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DENIED_BY_DEFAULT)
    )
    call_countries: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # base URLs an agent profile's LLM may name (comma-separated; empty: none, the operator's
    # OPENAI_BASE_URL / LOCAL_LLM_URL only): a tenant's profile must not make the worker call inside
    profile_llm_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # call recordings are local files: Call.recording_location is a path inside this directory
    # (relative to it, or absolute within it); empty: <state_dir>/recordings
    recordings_dir: Path | None = None
    # where finished recordings are kept: local (recordings_dir) or s3 (an S3-compatible bucket; the
    # control plane uploads each merged file and serves it from there)
    recording_storage: Literal["local", "s3"] = "local"
    s3_bucket: str = ""
    s3_prefix: str = "recordings/"
    # empty: AWS (https://s3.<region>.amazonaws.com); else e.g. http://127.0.0.1:9000 (MinIO, Ceph, R2)
    s3_endpoint: str = ""
    s3_region: str = "us-east-1"
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")
    # recordings (files and objects) older than this many days are deleted by the sweeper; 0: kept
    recording_retention_days: int = Field(default=0, ge=0, le=36500)
    # a track recording still running this long after its call ended is stopped (the agent may stay
    # in the room after the caller hung up; what egress writes after the call is cut off when the
    # tracks are merged); one not ended this long after that is failed ("egress stopped
    # responding"), as is one whose egress does not answer the probe sent every
    # recording_probe_interval_s twice in a row
    recording_stop_after_s: float = Field(default=3.0, ge=0.5, le=600.0)
    recording_lost_after_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    recording_probe_interval_s: float = Field(default=10.0, ge=0.5, le=600.0)
    # signs the review pages' session cookies; empty: generated once into <state_dir>/review-secret.
    # Control planes behind one address need the same value.
    session_secret: SecretStr = SecretStr("")
    # the bearer token workers send with call events and profile requests: a secret of its own (not
    # derived from LiveKit's, which egress shows on its command line); empty: generated once into
    # <state_dir>/worker-secret. Workers on other hosts need the same value.
    worker_secret: SecretStr = SecretStr("")
    # a TLS proxy in front of the control plane: the addresses whose X-Forwarded-Proto/-For are
    # believed (comma-separated; uvicorn's default is 127.0.0.1), so that review cookies get Secure;
    # cookie_secure sets Secure on them whatever the request says
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["127.0.0.1"])
    cookie_secure: bool = False
    log_level: str = "INFO"

    # ---- public mode: carriers reach livekit-sip (deploy/public-mode.md) --------------------------
    # Unset, the stack stays on bind_host (loopback) and renders exactly the dev configs.
    # sip_listen_ip: where livekit-sip listens for SIP (UDP/TCP, and TLS) and RTP (an interface's
    # address, or 0.0.0.0 for all); public_ip: the address carriers send SIP and RTP to, put into
    # every Contact and SDP (livekit-sip's nat_1_to_1_ip), e.g. the 1:1 NAT address of a cloud host;
    # use_external_ip: ask a public STUN server (Google's, fixed in livekit-sip) for that address at
    # start instead; only when asked for, and never together with public_ip.
    sip_listen_ip: str = ""
    public_ip: str = ""
    use_external_ip: bool = False
    # livekit-server for workers, bridges and egress on other hosts: where its HTTP port (7880) and
    # its ICE/UDP range listen, and the address it hands them for media (rtc.node_ip); carriers
    # never talk to it. Unset: loopback, which is all one host needs.
    livekit_listen_ip: str = ""
    livekit_node_ip: str = ""
    # SIP over TLS toward carriers: a TLS listener on sip_tls_port (announced in the Contact), with
    # the certificate chain and key as PEM files (loaded at livekit-sip's start: a renewed
    # certificate takes a restart); sip_hostname, the certificate's name, goes into TLS Contacts
    sip_tls: bool = False
    sip_tls_port: int = Field(default=5061, ge=1, le=65535)
    sip_tls_cert_file: Path | None = None
    sip_tls_key_file: Path | None = None
    sip_hostname: str = Field(default="", max_length=253)
    # livekit-sip checks a TLS carrier's certificate chain (not its name: SIP addresses are mostly IP
    # addresses) against the system's CAs; a PEM bundle here replaces the system's bundle file (its
    # certificate directory still counts), e.g. for a carrier or a PBX with a private CA
    sip_tls_ca_file: Path | None = None
    # SRTP (SDES) of a trunk created without media_encryption: disable, allow (when the far end
    # offers it) or require; the keys travel in the SDP, so require needs sip_tls
    sip_media_encryption: Literal["disable", "allow", "require"] = "disable"

    # ---- secrets as files (Kubernetes and Docker secrets) -----------------------------------------
    # PHONEAGENT_<NAME>_FILE names a file whose content (surrounding whitespace dropped) is <NAME>'s
    # value, read once at start: a missing, unreadable or empty file stops the start, naming the
    # setting. A value and its file at once are refused. LiveKit's key and secret from files win over
    # LIVEKIT_API_KEY/LIVEKIT_API_SECRET and the stack's generated ones, and `stack up` renders them,
    # and the Redis password from its file, into the stack's configs.
    worker_secret_file: Path | None = None
    session_secret_file: Path | None = None
    database_url_file: Path | None = None
    s3_secret_key_file: Path | None = None
    livekit_api_key_file: Path | None = None
    livekit_api_secret_file: Path | None = None
    redis_password_file: Path | None = None
    _file_secrets: dict[str, str] = PrivateAttr(default_factory=dict)

    # ---- speech and brain providers --------------------------------------------------------------
    # Unprefixed names follow the seed scheme (AGENT_MODE and the provider keys and local URLs);
    # the knobs it does not name carry the PHONEAGENT_ prefix. Whether a mode has what it needs (a
    # key, a local model) is checked at worker start by phoneagent.speech.providers.check: the
    # control plane shares these settings and must not refuse to start over a worker's key.
    # local: everything on this machine; api: providers over the network; hybrid: both, one the
    # fallback of the other (FallbackAdapter)
    agent_mode: Mode = Field(default="local", validation_alias="AGENT_MODE")
    # a component's own mode, when it differs from AGENT_MODE (e.g. API STT with local TTS)
    stt_mode: Mode | None = None
    tts_mode: Mode | None = None
    # hybrid: which side answers first; the other takes over within the same turn when it fails
    fallback_order: Literal["api_first", "local_first"] = "api_first"
    # the API side of each component; model empty: the provider's default (the model applies to
    # this provider; the fallbacks use their own defaults)
    stt_provider: SttProvider = "deepgram"
    stt_model: str = ""
    tts_provider: TtsProvider = "deepgram"
    tts_model: str = ""
    # more API providers tried after the first, in this order, within the same turn (comma-separated;
    # each needs its key); an agent profile may pick any of them, or another whose key is set
    stt_fallback_providers: Annotated[list[SttProvider], NoDecode] = Field(default_factory=list)
    tts_fallback_providers: Annotated[list[TtsProvider], NoDecode] = Field(default_factory=list)
    # OpenAI TTS voice (Deepgram's voice is its model, e.g. aura-2-thalia-en); empty: the default
    tts_voice: str = ""
    # the ElevenLabs and Cartesia voices (their voice ids); empty: the plugin's default voice
    elevenlabs_voice: str = ""
    cartesia_voice: str = ""
    # one attempt of one provider: connect/first-byte timeout, and its retries before the next one
    # takes over (the session adds none on top; see providers.session_conn_options). Retries
    # empty: none when a fallback is there to take over, one when the provider is alone.
    provider_timeout_s: float = Field(default=5.0, gt=0.0, le=60.0)
    provider_max_retry: int | None = Field(default=None, ge=0, le=3)
    # an LLM's time to first token before the next LLM takes over (slow local LLMs need more)
    llm_attempt_timeout_s: float = Field(default=15.0, gt=0.0, le=120.0)

    deepgram_api_key: SecretStr | None = Field(default=None, validation_alias="DEEPGRAM_API_KEY")
    deepgram_base_url: str = Field(
        default="https://api.deepgram.com/v1", validation_alias="DEEPGRAM_BASE_URL"
    )
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    # any OpenAI-compatible API (the key goes only here)
    openai_base_url: str = Field(default="https://api.openai.com/v1", validation_alias="OPENAI_BASE_URL")
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str = Field(
        default="https://api.anthropic.com", validation_alias="ANTHROPIC_BASE_URL"
    )
    elevenlabs_api_key: SecretStr | None = Field(default=None, validation_alias="ELEVENLABS_API_KEY")
    elevenlabs_base_url: str = Field(
        default="https://api.elevenlabs.io/v1", validation_alias="ELEVENLABS_BASE_URL"
    )
    cartesia_api_key: SecretStr | None = Field(default=None, validation_alias="CARTESIA_API_KEY")
    cartesia_base_url: str = Field(default="https://api.cartesia.ai", validation_alias="CARTESIA_BASE_URL")
    assemblyai_api_key: SecretStr | None = Field(default=None, validation_alias="ASSEMBLYAI_API_KEY")
    # its streaming websocket, written as https:// (the plugin is given wss://)
    assemblyai_base_url: str = Field(
        default="https://streaming.assemblyai.com", validation_alias="ASSEMBLYAI_BASE_URL"
    )
    groq_api_key: SecretStr | None = Field(default=None, validation_alias="GROQ_API_KEY")
    groq_base_url: str = Field(default="https://api.groq.com/openai/v1", validation_alias="GROQ_BASE_URL")
    # local STT: in-process faster-whisper, or an OpenAI-compatible server (faster-whisper-server,
    # speaches) when WHISPER_LOCAL_URL is set; the model empty: tiny.en in process, whisper-1 on a server
    whisper_local_url: str = Field(default="", validation_alias="WHISPER_LOCAL_URL")
    whisper_local_model: str = Field(default="", validation_alias="WHISPER_LOCAL_MODEL")
    # local TTS: in-process Piper, or an OpenAI-compatible speech server when PIPER_URL is set
    piper_url: str = Field(default="", validation_alias="PIPER_URL")
    piper_voice: str = Field(default="en_US-joe-medium", validation_alias="PIPER_VOICE")
    # the LLM brain's local side: an OpenAI-compatible server (Ollama, vLLM, llama.cpp)
    local_llm_url: str = Field(default="", validation_alias="LOCAL_LLM_URL")
    local_llm_model: str = Field(default="llama3.2:3b", validation_alias="LOCAL_LLM_MODEL")

    # the post-call extraction (phoneagent.calls.extraction): an agent profile's outcome_schema filled
    # from the ended call's transcript by an LLM. off; openai: OPENAI_BASE_URL with OPENAI_API_KEY (any
    # OpenAI-compatible server there); local: LOCAL_LLM_URL (Ollama, vLLM, llama.cpp), no key. The
    # model empty: gpt-4o-mini on openai, LOCAL_LLM_MODEL on local. Run by the background work.
    outcome_extraction: Literal["off", "openai", "local"] = "off"
    outcome_extraction_model: str = Field(default="", max_length=200)
    # attempts per call (each may take up to the timeout) before it is failed; the first retry after
    # about retry_base_s, each next one 3x later
    outcome_extraction_max_attempts: int = Field(default=4, ge=1, le=20)
    outcome_extraction_retry_base_s: float = Field(default=5.0, ge=0.05, le=3600.0)
    outcome_extraction_timeout_s: float = Field(default=60.0, gt=0.0, le=600.0)

    @field_validator(
        "deepgram_api_key",
        "openai_api_key",
        "anthropic_api_key",
        "elevenlabs_api_key",
        "cartesia_api_key",
        "assemblyai_api_key",
        "groq_api_key",
        mode="before",
    )
    @classmethod
    def _empty_key_is_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator(
        "deepgram_base_url",
        "openai_base_url",
        "anthropic_base_url",
        "elevenlabs_base_url",
        "cartesia_base_url",
        "assemblyai_base_url",
        "groq_base_url",
        "whisper_local_url",
        "piper_url",
        "local_llm_url",
    )
    @classmethod
    def _http_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        return check_http_url(v) if v else v

    @field_validator(
        "extra_webhook_urls",
        "webhook_allowed_networks",
        "trunk_allowed_networks",
        "call_number_types_denied",
        "call_countries",
        "profile_llm_urls",
        "trusted_proxies",
        "stt_fallback_providers",
        "tts_fallback_providers",
        mode="before",
    )
    @classmethod
    def _comma_list(cls, v: object) -> object:
        return [u.strip() for u in v.split(",") if u.strip()] if isinstance(v, str) else v

    @field_validator("webhook_allowed_networks", "trunk_allowed_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for net in v:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"{net!r} is not a network (e.g. 10.0.0.0/8)") from exc
        return v

    @property
    def prometheus_ports(self) -> tuple[int, ...]:
        """LiveKit's Prometheus ports that are on (livekit-server, livekit-sip, egress)."""
        ports = (self.livekit_prometheus_port, self.sip_prometheus_port, self.egress_prometheus_port)
        return tuple(p for p in ports if p)

    def check_trunk_address(self, address: str) -> None:
        """ValueError when a carrier trunk's address leads inside (see netguard.check_sip_host)."""
        # the stack's own listeners, on loopback and on the addresses public mode gives it
        hosts = {"127.0.0.1" if self.bind_host == "localhost" else self.bind_host}
        hosts |= {
            h
            for h in (self.sip_listen_ip, self.public_ip, self.livekit_listen_ip, self.livekit_node_ip)
            if h and not ipaddress.ip_address(h).is_unspecified
        }
        own = {
            (ipaddress.ip_address(host), port)
            for host in hosts
            for port in (
                self.sip_port,
                *((self.sip_tls_port,) if self.sip_tls else ()),
                self.livekit_port,
                self.livekit_rtc_tcp_port,
                self.redis_port,
                self.api_port,
                self.worker_http_port,
                self.worker_metrics_port,
                *self.prometheus_ports,
            )
        }
        allowed = parse_networks(self.trunk_allowed_networks)
        check_sip_host(address, AddressPolicy(allowed_networks=allowed), own)

    @field_validator("call_number_types_denied")
    @classmethod
    def _number_types(cls, v: list[str]) -> list[str]:
        unknown = [t for t in v if t not in TYPE_NAMES]
        if unknown:
            raise ValueError(f"unknown number types {unknown}; known: {', '.join(TYPE_NAMES)}")
        return v

    @field_validator("call_countries")
    @classmethod
    def _countries(cls, v: list[str]) -> list[str]:
        v = [c.upper() for c in v]
        if any(len(c) != 2 or not c.isalpha() for c in v):
            raise ValueError("countries are ISO 3166 two-letter codes, e.g. US,CA,GB")
        return v

    @field_validator("profile_llm_urls")
    @classmethod
    def _llm_urls(cls, v: list[str]) -> list[str]:
        return [u.strip().rstrip("/") for u in v]

    def number_policy(self, countries: Sequence[str] = ()) -> NumberPolicy:
        """The operator's number policy; ``countries`` (a tenant's own list) replaces theirs."""
        return NumberPolicy(tuple(self.call_number_types_denied), tuple(countries or self.call_countries))

    def webhook_address_policy(self) -> AddressPolicy:
        return AddressPolicy(
            allowed_networks=parse_networks(self.webhook_allowed_networks),
            require_https=self.webhook_require_https,
        )

    @field_validator("bind_host")
    @classmethod
    def _loopback_only(cls, v: str) -> str:
        # the stack is a local, loopback-only service; a public bind needs TLS and a firewall plan
        if not v.startswith("127.") and v != "localhost":
            raise ValueError("the local stack binds to loopback only (127.0.0.0/8)")
        return v

    @field_validator("listen_host")
    @classmethod
    def _an_address(cls, v: str) -> str:
        if v:
            ipaddress.ip_address(v)  # ValueError: not an IP address
        return v

    @field_validator("session_secret")
    @classmethod
    def _strong_secret(cls, v: SecretStr) -> SecretStr:
        return _strong_session_secret(v)

    @model_validator(mode="after")
    def _s3_complete(self) -> Settings:
        if self.recording_storage == "s3" and not self.s3_bucket:
            raise ValueError("recording_storage=s3 needs s3_bucket (PHONEAGENT_S3_BUCKET)")
        return self

    @model_validator(mode="after")
    def _extraction_can_work(self) -> Settings:
        if self.outcome_extraction == "local" and not self.local_llm_url:
            raise ValueError(
                "PHONEAGENT_OUTCOME_EXTRACTION=local needs LOCAL_LLM_URL (an OpenAI-compatible server)"
            )
        if self.outcome_extraction == "openai":
            if self.agent_mode == "local":
                # a transcript sent to a provider leaves the machine, as a call's words would
                raise ValueError(
                    "PHONEAGENT_OUTCOME_EXTRACTION=openai sends transcripts over the network, and "
                    "AGENT_MODE=local keeps calls on this machine: use local (LOCAL_LLM_URL), or "
                    "AGENT_MODE=api or hybrid"
                )
            if self.openai_api_key is None:
                raise ValueError("PHONEAGENT_OUTCOME_EXTRACTION=openai needs OPENAI_API_KEY")
        return self

    @model_validator(mode="after")
    def _public_mode(self) -> Settings:
        check_public_mode(self)
        return self

    @model_validator(mode="after")
    def _secrets_from_files(self) -> Settings:
        for name in ("worker_secret", "session_secret", "s3_secret_key", "database_url"):
            path: Path | None = getattr(self, f"{name}_file")
            if path is None:
                continue
            setting = f"PHONEAGENT_{name.upper()}"
            current = getattr(self, name)
            if current.get_secret_value() if isinstance(current, SecretStr) else current:
                raise ValueError(f"{setting} and {setting}_FILE are both set: keep one")
            value = read_secret_file(path, f"{setting}_FILE")
            setattr(self, name, SecretStr(value) if isinstance(current, SecretStr) else value)
        _strong_session_secret(self.session_secret)  # also one read from its file
        for name in ("livekit_api_key", "livekit_api_secret", "redis_password"):
            path = getattr(self, f"{name}_file")
            if path is not None:
                self._file_secrets[name] = read_secret_file(path, f"PHONEAGENT_{name.upper()}_FILE")
        if (self.livekit_api_key_file is None) != (self.livekit_api_secret_file is None):
            raise ValueError(
                "PHONEAGENT_LIVEKIT_API_KEY_FILE and PHONEAGENT_LIVEKIT_API_SECRET_FILE go together: "
                "a key without its secret (or the reverse) matches no LiveKit server"
            )
        return self

    def file_secret(self, name: str) -> str | None:
        """A secret read from its ``PHONEAGENT_<NAME>_FILE`` at start (``livekit_api_key``,
        ``livekit_api_secret``, ``redis_password``); None when no file was given."""
        return self._file_secrets.get(name)

    @model_validator(mode="after")
    def _ranges(self) -> Settings:
        for name, lo, hi in (
            ("livekit_rtc_udp", self.livekit_rtc_udp_start, self.livekit_rtc_udp_end),
            ("sip_rtp", self.sip_rtp_start, self.sip_rtp_end),
        ):
            if not 1024 <= lo <= hi <= 65535:
                raise ValueError(f"{name}: port range {lo}-{hi} is not within 1024-65535 or is reversed")
        return self

    @field_validator("livekit_front_url")
    @classmethod
    def _ws_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if v and not (v.startswith(("ws://", "wss://")) and len(v.split("://", 1)[1]) > 0):
            raise ValueError(f"livekit_front_url {v!r}: give a ws:// or wss:// URL")
        return v

    @property
    def livekit_url(self) -> str:
        """Where LiveKit's clients reach it (``livekit_front_url``, else this node's port)."""
        return self.livekit_front_url or f"ws://{self.bind_host}:{self.livekit_port}"

    @property
    def events_url(self) -> str:
        return self.control_plane_url or self.api_url

    @property
    def recordings_path(self) -> Path:
        return (self.recordings_dir or self.state_dir / "recordings").expanduser()

    @property
    def listen_address(self) -> str:
        """The address the control plane and the worker's HTTP servers bind (``listen_host``)."""
        return self.listen_host or self.bind_host

    @property
    def api_url(self) -> str:
        return f"http://{self.bind_host}:{self.api_port}"

    @property
    def livekit_http_url(self) -> str:
        return f"http://{self.bind_host}:{self.livekit_port}"

    @property
    def call_capacity(self) -> int:
        """The calls one worker takes at once (``max_concurrent_calls``, or its measured default)."""
        if self.max_concurrent_calls is not None:
            return self.max_concurrent_calls
        cores = os.cpu_count() or 2
        return 2 * cores if self.shared_models else cores // 2 + 1

    @property
    def turn_timing(self) -> TurnTiming:
        """The end-of-turn timings in force: each one set, or the turn detection mode's own."""
        base = TURN_TIMING[self.turn_detection]
        return TurnTiming(
            vad_silence_s=self.vad_min_silence_s
            if self.vad_min_silence_s is not None
            else base.vad_silence_s,
            min_delay_s=(
                self.endpointing_min_delay_s if self.endpointing_min_delay_s is not None else base.min_delay_s
            ),
            max_delay_s=(
                self.endpointing_max_delay_s if self.endpointing_max_delay_s is not None else base.max_delay_s
            ),
        )

    def provider_key(self, provider: str) -> SecretStr | None:
        """An API provider's key (``KEY_VARS`` names its variable); None when it is not set."""
        secret: SecretStr | None = (
            getattr(self, f"{provider}_api_key", None) if provider in KEY_VARS else None
        )
        return secret

    @property
    def stt_effective_mode(self) -> Mode:
        return self.stt_mode or self.agent_mode

    @property
    def tts_effective_mode(self) -> Mode:
        return self.tts_mode or self.agent_mode


@functools.cache
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        # each error's place and message, never its input: a model check's input holds every setting
        # given, secrets and API keys too
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        )
        raise ConfigError(
            f"invalid settings: {problems}", hint="check PHONEAGENT_* variables and .env"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"invalid settings: {exc}", hint="check PHONEAGENT_* variables and .env") from None
