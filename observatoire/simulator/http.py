"""Tiny request/response types shared by the simulator's platform modules."""

from __future__ import annotations

from dataclasses import dataclass, field
from http.cookies import SimpleCookie


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, list[str]]
    headers: dict[str, str]
    #: The fault injected into this request, if any (platform modules render some).
    fault: str | None = None

    @property
    def cookies(self) -> dict[str, str]:
        jar = SimpleCookie()
        try:
            jar.load(self.headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is just no cookie
            return {}
        return {k: m.value for k, m in jar.items()}

    def field(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: A transport-level misbehaviour instead of a normal answer:
    #: "hang", "reset", "truncate" or "blackhole".
    action: str | None = None

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode("utf-8"))

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(302, b"", headers=[("Location", location)])
