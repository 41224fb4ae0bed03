"""Which OpenAI-compatible servers a campaign may send its prompts, and the operator's key, to.

A model spec such as `openai-compatible:http://10.0.0.5:8000/v1:qwen` names its own server: whoever writes
the spec picks where the process driving the campaign sends requests, with
AUTORESEARCH_OPENAI_COMPATIBLE_API_KEY when one is set. The operator lists the servers campaigns may name in
AUTORESEARCH_LLM_BASE_URLS (comma-separated). The rule, decided in `check_server` alone:

- a campaign run on the cluster (every campaign submitted through the API, and `run --distributed`) may name
  a listed server only, whether or not a key is set; an empty list allows none;
- a campaign `autoresearch run` drives in its own process may name any server while the list is empty (the
  person at that terminal is the operator: they hold the keys and typed the URL), and a listed one otherwise.

The rule follows the campaign, not the process: `resume` of a cluster campaign, a worker and the controller
all check it the same way, so a spec written into the database some other way is refused where the client
is built. OpenAI and Anthropic models are not concerned: their base URLs come from the operator's settings.

A URL matches an entry when scheme, host and port are equal and the entry's path segments begin the URL's.
Both are normalised first: scheme and host lower-cased, one trailing dot of the host dropped, the default
port made explicit (80, 443), an IPv6 address compressed, a trailing `/` dropped. A URL with user info
(`http://allowed@evil/v1`), a query, a fragment, a percent-escape, an empty, `.` or `..` path segment, or any
character outside letters, digits and `-._~` in its host or path segments is refused, not interpreted:
parsers disagree on such URLs, and the SDK that sends the key must not see another host than the one checked.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from autoresearch.adapters.llm.base import ModelSpec
from autoresearch.errors import ConfigError

LIST_VARIABLE = "AUTORESEARCH_LLM_BASE_URLS"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_URL = re.compile(
    r"(?P<scheme>[A-Za-z]+)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.?)"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<path>(?:/[A-Za-z0-9._~-]*)*)"
)


@dataclass(frozen=True)
class ServerUrl:
    """A server's URL in the one form two URLs are compared in."""

    scheme: str
    host: str
    port: int
    path: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> ServerUrl:
        """ValueError, saying what is wrong, for anything but http(s)://HOST[:PORT][/PATH]."""
        found = _URL.fullmatch(text.strip())
        if found is None:
            raise ValueError(_why_not_plain(text))
        scheme = found["scheme"].lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"the scheme {scheme!r} is not http or https")
        host = found["host"].lower()
        if host.startswith("["):
            try:
                host = f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
            except ValueError:
                raise ValueError(f"{host} is not an IPv6 address") from None
        host = host.removesuffix(".")
        port = int(found["port"]) if found["port"] is not None else _DEFAULT_PORTS[scheme]
        if not 0 < port < 65536:
            raise ValueError(f"the port {port} is out of range")
        segments = found["path"].removesuffix("/").split("/")[1:]
        if any(segment in ("", ".", "..") for segment in segments):
            raise ValueError("its path has an empty, `.` or `..` segment")
        return cls(scheme, host, port, tuple(segments))

    def covers(self, url: ServerUrl) -> bool:
        """Whether `url` is this server, at this path or below it."""
        same_server = (self.scheme, self.host, self.port) == (url.scheme, url.host, url.port)
        return same_server and url.path[: len(self.path)] == self.path

    def __str__(self) -> str:
        path = "".join(f"/{segment}" for segment in self.path)
        return f"{self.scheme}://{self.host}:{self.port}{path}"


def _why_not_plain(text: str) -> str:
    if "@" in text:
        return "it has user info (`NAME@` before the host)"
    if "?" in text or "#" in text:
        return "it has a query or fragment"
    if "%" in text:
        return "it has percent-escapes"
    return "it is not http(s)://HOST[:PORT]/PATH with letters, digits and -._~ only"


def listed_servers(text: str) -> tuple[ServerUrl, ...]:
    """The servers AUTORESEARCH_LLM_BASE_URLS lists; ConfigError naming an entry that is not a plain URL."""
    listed = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            listed.append(ServerUrl.parse(entry))
        except ValueError as exc:
            raise ConfigError(f"{LIST_VARIABLE}: {entry!r} is refused: {exc}") from None
    return tuple(listed)


def check_server(spec: ModelSpec, listed: str, *, local_run: bool) -> None:
    """Refuse (ConfigError naming AUTORESEARCH_LLM_BASE_URLS) a model whose server the rule above does not
    allow. `listed`: the setting's text; `local_run`: the campaign is one `autoresearch run` drives in this
    process (not a campaign of the cluster)."""
    if spec.base_url is None:
        return
    servers = listed_servers(listed)
    if local_run and not servers:
        return
    try:
        url = ServerUrl.parse(spec.base_url)
    except ValueError as exc:
        raise ConfigError(
            f"model {spec}: the server URL {spec.base_url!r} is refused: {exc}; {LIST_VARIABLE} "
            "is matched only by plain http(s)://HOST[:PORT]/PATH URLs"
        ) from None
    if any(server.covers(url) for server in servers):
        return
    if not servers:
        raise ConfigError(
            f"model {spec}: {url} is not on {LIST_VARIABLE}, which is empty: a campaign run on the cluster "
            "may name no OpenAI-compatible server until the operator lists it there"
        )
    shown = ", ".join(str(server) for server in servers)
    raise ConfigError(f"model {spec}: {url} is not on {LIST_VARIABLE} ({shown})")
