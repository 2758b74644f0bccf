"""Whether the Hub can be used now, asked once before a download instead of after its retries.

Without a network, huggingface_hub and datasets retry each request with back-off (about 25 s per
call with huggingface_hub 1.x and 2.x) before they look in their cache. ``hub_reachable`` opens a TCP
connection to ``HF_ENDPOINT`` instead (``PROBE_SECONDS`` at most); ``offline_mode`` then makes both
libraries read their caches only, for one call. Behind an HTTP(S) proxy the Hub is not probed: only
the proxy knows whether it can be reached.
"""

import os
import socket
from contextlib import contextmanager
from urllib.parse import urlsplit

import datasets
import huggingface_hub
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.errors import HFValidationError

PROBE_SECONDS = 3.0
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def hub_offline() -> bool:
    """Whether offline mode is on (``HF_HUB_OFFLINE=1``, read by either library)."""
    return bool(huggingface_hub.constants.HF_HUB_OFFLINE or datasets.config.HF_HUB_OFFLINE)


def hub_reachable() -> bool:
    """Whether a TCP connection to the Hub's host opens within ``PROBE_SECONDS`` (true behind a proxy)."""
    if any(os.environ.get(variable) for variable in PROXY_VARIABLES):
        return True
    endpoint = urlsplit(huggingface_hub.constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=PROBE_SECONDS):
            return True
    except OSError:
        return False


def why_unavailable() -> str | None:
    """``None`` when the Hub can be used; otherwise why not, as a message says it."""
    if hub_offline():
        return "offline mode is on (HF_HUB_OFFLINE=1)"
    if not hub_reachable():
        return f"{huggingface_hub.constants.ENDPOINT} cannot be reached"
    return None


@contextmanager
def offline_mode(on: bool):
    """Offline mode for this call only: both libraries read the flag at call time, not only at import."""
    if not on:
        yield
        return
    saved = huggingface_hub.constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    huggingface_hub.constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        huggingface_hub.constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved


class ModelUnavailableError(ValueError):
    """The checkpoint is a Hub id, the Hub cannot be used now, and no copy of it is cached."""


def load_model_offline(name_or_path: str, flag: str = "model_name_or_path") -> bool:
    """Whether the checkpoint ``name_or_path`` must be read from the cache: the Hub cannot be used now.

    A local directory needs no Hub (``False``). A Hub id is looked up in the cache when the Hub is
    offline or unreachable; without a cached ``config.json``, ``ModelUnavailableError`` names ``flag``
    at once, where transformers would retry for about 50 s and end in a long traceback.
    """
    if os.path.isdir(name_or_path):
        return False
    why = why_unavailable()
    if why is None:
        return False
    try:
        cached = isinstance(try_to_load_from_cache(name_or_path, "config.json"), str)
    except HFValidationError:
        cached = False
    if cached:
        return True
    raise ModelUnavailableError(
        f"{flag}: {name_or_path!r} is not a local directory, {why}, and no copy of it is cached on this "
        f"machine; give --{flag} a local directory (a model saved with save_pretrained), or download it once "
        f"where the Hub can be reached (hf download {name_or_path}); a cached copy then loads without a "
        "network, also with HF_HUB_OFFLINE=1"
    )
