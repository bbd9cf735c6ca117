"""Where a basin's requests go: hosted S2 puts the basin in the host name, a single endpoint
(S2's open-source server, the emulator) takes it in the `s2-basin` header."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

BASIN_PLACEHOLDER = "{basin}"


@dataclass(frozen=True)
class BasinEndpoint:
    """A parsed `S2_BASIN_ENDPOINT`, e.g. `https://{basin}.b.s2.dev/v1` or `http://127.0.0.1:8080/v1`."""

    template: str

    def __post_init__(self) -> None:
        probe = urlsplit(self.template.replace(BASIN_PLACEHOLDER, "basin"))
        if probe.scheme not in ("http", "https") or not probe.netloc:
            raise ValueError(f"basin endpoint must be an http(s) URL, got {self.template!r}")
        if BASIN_PLACEHOLDER in self.template and BASIN_PLACEHOLDER not in self.template.split("/")[2]:
            raise ValueError("{basin} may appear only in the host of the basin endpoint")

    @classmethod
    def parse(cls, url: str) -> BasinEndpoint:
        url = url.rstrip("/")
        if not urlsplit(url.replace(BASIN_PLACEHOLDER, "basin")).path:
            url += "/v1"  # S2's API lives under /v1; accept a bare host for convenience
        return cls(url)

    @property
    def basin_in_host(self) -> bool:
        return BASIN_PLACEHOLDER in self.template

    def base_url(self, basin: str) -> str:
        return self.template.replace(BASIN_PLACEHOLDER, basin)

    def headers(self, basin: str) -> dict[str, str]:
        return {} if self.basin_in_host else {"s2-basin": basin}

    def streams_url(self, basin: str) -> str:
        return f"{self.base_url(basin)}/streams"

    def records_url(self, basin: str, stream: str) -> str:
        return f"{self.base_url(basin)}/streams/{quote(stream, safe='')}/records"

    def tail_url(self, basin: str, stream: str) -> str:
        return self.records_url(basin, stream) + "/tail"
