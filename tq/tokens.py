"""API tokens: who may use tq over HTTP, and what they may do.

Tokens come from the environment only, never from a file or a flag (which
`ps` would show): `TQ_API_TOKENS=name:token:role[,name:token:role...]`, role
`read` (look) or `operate` (look and act). The name is what the audit trail
records for every action the token takes (`api:<name>`); the token itself is
a secret: it is never printed, logged or put in an error, whatever characters
it holds (`environment_secrets` in tq.config masks it in messages).

The rules, in one place for the HTTP API and the console in a browser:

- a malformed `TQ_API_TOKENS` is a ConfigError naming the entry by position
  (never its text, which holds a secret), so the server refuses to start;
- a token is checked in constant time against every configured token;
- `operate` includes `read`;
- without tokens, a server binds and answers loopback only (`is_loopback`).
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from tq.config import ConfigError

ENV = "TQ_API_TOKENS"
ROLES = ("read", "operate")
NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")
MIN_TOKEN = 16  # shorter than this is guessable; refused at start


@dataclass(frozen=True)
class Token:
    name: str
    role: str  # "read" or "operate"

    def may(self, role: str) -> bool:
        """Whether this token holds `role` ("operate" includes "read")."""
        return role == "read" or self.role == "operate"

    @property
    def actor(self) -> str:
        """The audit trail's user for this token's actions."""
        return f"api:{self.name}"


@dataclass(frozen=True)
class Tokens:
    entries: tuple[tuple[Token, bytes], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.entries)

    def check(self, presented: str | None) -> Token | None:
        """The token `presented` is, or None. Every entry is compared, so the
        time taken does not say which entry (or how much of one) matched."""
        if not presented:
            return None
        given = presented.encode("utf-8", "surrogatepass")
        found = None
        for token, secret in self.entries:
            if hmac.compare_digest(given, secret) and found is None:
                found = token
        return found

    def bearer(self, header: str | None) -> Token | None:
        """The token of an `Authorization: Bearer <token>` header value, or None."""
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.check(value.strip())


def load(env: Mapping[str, str] | None = None) -> Tokens:
    """The tokens `TQ_API_TOKENS` names (none when unset or empty)."""
    env = os.environ if env is None else env
    text = env.get(ENV, "").strip()
    if not text:
        return Tokens()
    entries: list[tuple[Token, bytes]] = []
    names: set[str] = set()
    for position, item in enumerate(text.split(","), 1):
        parts = item.strip().split(":")
        # The token may not hold ":" or ","; the entry is never echoed (it holds a secret).
        if len(parts) != 3:
            raise ConfigError(f"{ENV}: entry {position} is not name:token:role")
        name, secret, role = (part.strip() for part in parts)
        if not NAME.fullmatch(name):
            raise ConfigError(f"{ENV}: entry {position}: the name must be 1-32 letters, "
                              "digits, '_', '.' or '-'")
        if name in names:
            raise ConfigError(f"{ENV}: entry {position}: the name {name} is used twice")
        if role not in ROLES:
            raise ConfigError(f"{ENV}: entry {position}: the role must be read or operate")
        if len(secret) < MIN_TOKEN:
            raise ConfigError(f"{ENV}: entry {position}: the token is shorter than "
                              f"{MIN_TOKEN} characters")
        names.add(name)
        entries.append((Token(name, role), secret.encode("utf-8", "surrogatepass")))
    return Tokens(tuple(entries))


def is_loopback(host: str) -> bool:
    """Whether `host` (an address to bind, a peer's address) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


__all__ = ["Token", "Tokens", "load", "is_loopback", "ENV", "ROLES"]
