"""Electric Cloud provisioning (reference §3.6): ask the claim API for a claimable
database, poll until it is ready, and hand back its connection details.

The API's base URL is a setting (``ELECTRIC_API_BASE_URL``); tests point it at a local
fake, since the real one is out of reach.
"""

from __future__ import annotations

from typing import Any

import attrs
import httpx
import trio

__all__ = [
    "DEFAULT_API_BASE_URL",
    "DEFAULT_DASHBOARD_URL",
    "ELECTRIC_URL",
    "Claim",
    "ProvisionError",
    "provision",
]

DEFAULT_API_BASE_URL = "https://dashboard.electric-sql.cloud/api"
DEFAULT_DASHBOARD_URL = "https://dashboard.electric-sql.cloud"
ELECTRIC_URL = "https://api.electric-sql.cloud"
USER_AGENT = "create-electric-app"


class ProvisionError(Exception):
    """The claim API refused, failed, or did not finish in time."""


@attrs.frozen
class Claim:
    source_id: str
    secret: str
    database_url: str
    claim_id: str
    claim_url: str
    electric_url: str = ELECTRIC_URL

    def to_json(self) -> dict[str, str]:
        return {
            "sourceId": self.source_id,
            "secret": self.secret,
            "databaseUrl": self.database_url,
            "electricUrl": self.electric_url,
            "claimId": self.claim_id,
            "claimUrl": self.claim_url,
        }


def _text(data: dict[str, Any], *keys: str) -> str:
    """The first of ``keys`` found in ``data`` or in its nested ``source`` object."""
    nested = data.get("source")
    for place in (data, nested if isinstance(nested, dict) else {}):
        for key in keys:
            value = place.get(key)
            if isinstance(value, str) and value:
                return value
    raise ProvisionError(f"the claim API's answer has no {keys[0]}")


async def provision(
    client: httpx.AsyncClient,
    *,
    api_base_url: str = DEFAULT_API_BASE_URL,
    dashboard_url: str = DEFAULT_DASHBOARD_URL,
    interval: float = 1.0,
    attempts: int = 60,
) -> Claim:
    """Claim a database: POST, then poll every ``interval`` s up to ``attempts`` times
    (404 = still provisioning)."""
    base = api_base_url.rstrip("/")
    headers = {"User-Agent": USER_AGENT}
    try:
        created = await client.post(f"{base}/public/v1/claimable-sources", json={}, headers=headers)
        if created.status_code >= 400:
            raise ProvisionError(f"the claim API answered {created.status_code}")
        claim_id = _text(created.json(), "claimId", "claim_id", "id")
        for _ in range(attempts):
            polled = await client.get(
                f"{base}/public/v1/claimable-sources/{claim_id}", headers=headers
            )
            if polled.status_code == 404:
                await trio.sleep(interval)
                continue
            if polled.status_code >= 400:
                raise ProvisionError(f"the claim API answered {polled.status_code}")
            data = polled.json()
            if not isinstance(data, dict):
                raise ProvisionError("the claim API's answer is not an object")
            state = data.get("state")
            if state == "failed" or data.get("error"):
                raise ProvisionError(f"provisioning failed: {data.get('error') or state}")
            if state == "ready":
                return Claim(
                    source_id=_text(data, "source_id", "sourceId"),
                    secret=_text(data, "secret"),
                    database_url=_text(data, "connection_uri", "databaseUrl"),
                    claim_id=claim_id,
                    claim_url=f"{dashboard_url.rstrip('/')}/claim?uuid={claim_id}",
                )
            await trio.sleep(interval)
    except httpx.HTTPError as exc:
        raise ProvisionError(f"the claim API is unreachable: {exc}") from exc
    except ValueError as exc:
        raise ProvisionError(f"the claim API answered something that is not JSON: {exc}") from exc
    raise ProvisionError(f"the database was not ready after {attempts} polls")
