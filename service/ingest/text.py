"""Text normalisation shared by parsers and the loader: whitespace, slugs, title keys, links."""

from __future__ import annotations

import re
import unicodedata

from service.models import Links

_WS = re.compile(r"\s+")
_NON_SLUG = re.compile(r"[^a-z0-9]+")
_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?)]}'\""
SLUG_MAX = 80


def squash_whitespace(text: str) -> str:
    """Collapse runs of whitespace (newlines included) to single spaces and trim."""
    return _WS.sub(" ", text).strip()


def _ascii_fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def title_key(title: str) -> str:
    """How two records without ids are recognised as one paper: case, accents, punctuation ignored."""
    return _NON_SLUG.sub(" ", _ascii_fold(title).lower()).strip()


def slugify(title: str, max_length: int = SLUG_MAX) -> str:
    """A URL-safe id from a title, cut at a word boundary."""
    slug = _NON_SLUG.sub("-", _ascii_fold(title).lower()).strip("-")
    if len(slug) > max_length:
        slug = slug[:max_length].rsplit("-", 1)[0] or slug[:max_length]
    return slug or "paper"


def find_urls(text: str) -> list[str]:
    """URLs in free text, without the sentence punctuation that follows them."""
    urls: list[str] = []
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(_URL_TRAILING)
        if url not in urls:
            urls.append(url)
    return urls


def classify_links(urls: list[str]) -> Links:
    """Sort URLs into code, models, datasets, project pages and PDFs."""
    kinds: dict[str, list[str]] = {
        "code": [],
        "models": [],
        "datasets": [],
        "project": [],
        "pdf": [],
    }
    for url in urls:
        kinds[_link_kind(url)].append(url)
    return Links(**kinds)


_CODE_HOSTS = (
    "github.com",
    "gitlab.com",
    "bitbucket.org",
    "anonymous.4open.science",
    "codeberg.org",
)


def _link_kind(url: str) -> str:
    lowered = url.lower()
    host = lowered.split("://", 1)[1].split("/", 1)[0]
    host = host.removeprefix("www.")
    path = lowered.split(host, 1)[1] if host in lowered else ""
    if host in _CODE_HOSTS:
        return "code"
    if host == "huggingface.co":
        if path.startswith("/datasets"):
            return "datasets"
        if path.startswith("/spaces"):
            return "project"
        return "models"
    if lowered.endswith(".pdf") or (host.endswith("arxiv.org") and path.startswith("/pdf")):
        return "pdf"
    return "project"
