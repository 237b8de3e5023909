"""Meilisearch API keys: the API searches with a search-only key, the loader writes with an
admin key, and the master key only ever provisions them (`papers meili-keys`)."""

from __future__ import annotations

from typing import Final

import msgspec
from meilisearch_python_sdk import AsyncClient
from meilisearch_python_sdk.errors import MeilisearchApiError
from meilisearch_python_sdk.models.client import Key, KeyCreate

from service.search.meilisearch import DEFAULT_INDEX, meili_errors

KEYS_PAGE_SIZE: Final = 100


class KeySpec(msgspec.Struct, frozen=True, kw_only=True):
    """A key we provision; `name` is what finds it again on the next run."""

    name: str
    description: str
    actions: tuple[str, ...]
    indexes: tuple[str, ...]


def search_key_spec(index: str = DEFAULT_INDEX) -> KeySpec:
    """Search-only, and only on the live index: the swap keeps its name."""
    return KeySpec(
        name="papers-search",
        description="papers API: search only",
        actions=("search",),
        indexes=(index,),
    )


def admin_key_spec(index: str = DEFAULT_INDEX) -> KeySpec:
    """What the loader and `papers reindex` need, on the live index and `<index>_new`."""
    return KeySpec(
        name="papers-admin",
        description="papers loader: documents, indexes, settings, tasks",
        actions=("documents.*", "indexes.*", "settings.*", "tasks.*", "search"),
        indexes=(f"{index}*",),
    )


def _matches(key: Key, spec: KeySpec) -> bool:
    return (
        set(key.actions) == set(spec.actions)
        and set(key.indexes) == set(spec.indexes)
        and key.expires_at is None
    )


async def _list_keys(client: AsyncClient) -> list[Key]:
    keys: list[Key] = []
    while True:
        with meili_errors("listing API keys"):
            page = await client.get_keys(offset=len(keys), limit=KEYS_PAGE_SIZE)
        keys.extend(page.results)
        if not page.results or len(keys) >= page.total:
            return keys


async def _find_or_create(client: AsyncClient, existing: list[Key], spec: KeySpec) -> str:
    """The key named `spec.name`; created, or recreated when its rights differ from `spec`."""
    named = [key for key in existing if key.name == spec.name]
    for key in named:
        if _matches(key, spec):
            return key.key
    for key in named:  # rights can't be edited in place: drop the stale key
        with meili_errors(f"deleting the stale {spec.name!r} key"):
            await client.delete_key(key.uid)
    create = KeyCreate(
        name=spec.name,
        description=spec.description,
        actions=list(spec.actions),
        indexes=list(spec.indexes),
        expires_at=None,
    )
    with meili_errors(f"creating the {spec.name!r} key"):
        key = await client.create_key(create)
    return key.key


async def provision_keys(
    url: str, master_key: str, *, index: str = DEFAULT_INDEX, request_timeout: float = 10.0
) -> tuple[str, str]:
    """Find or create the search and admin keys with the master key: (search_key, admin_key).

    Idempotent: keys are found again by name, so re-running returns the same keys.
    """
    async with AsyncClient(url, master_key) as client:
        client.http_client.timeout = request_timeout
        existing = await _list_keys(client)
        search = await _find_or_create(client, existing, search_key_spec(index))
        admin = await _find_or_create(client, existing, admin_key_spec(index))
    return search, admin


async def is_master_key(url: str, key: str, *, request_timeout: float = 5.0) -> bool:
    """True when `key` can list the API keys, which only the master key can among ours.

    False on 401/403 (including an instance with no master key at all); other failures raise
    EngineUnavailableError or MeilisearchRequestError.
    """
    async with AsyncClient(url, key) as client:
        client.http_client.timeout = request_timeout
        with meili_errors("checking the API key"):
            try:
                await client.get_keys(limit=1)
            except MeilisearchApiError as err:
                if err.status_code in (401, 403):
                    return False
                raise
    return True
