"""Slugs, title keys and link extraction."""

from __future__ import annotations

from service.ingest.text import classify_links, find_urls, slugify, title_key


def test_slugify_is_url_safe_and_cut_at_a_word() -> None:
    assert slugify("GEAR: An Efficient KV Cache") == "gear-an-efficient-kv-cache"
    assert slugify("Café — Über ñ") == "cafe-uber-n"
    assert slugify("!!!") == "paper"
    long = slugify("word " * 40)
    assert len(long) <= 80
    assert long.endswith("word")


def test_title_key_ignores_case_accents_and_punctuation() -> None:
    assert title_key("Café: A Study!") == title_key("cafe a  study")
    assert title_key("A Study") != title_key("A Study 2")


def test_find_urls_strips_sentence_punctuation_and_dedupes() -> None:
    text = "See https://github.com/a/b. Also (https://x.org/p), https://github.com/a/b, done"
    assert find_urls(text) == ["https://github.com/a/b", "https://x.org/p"]


def test_classify_links_by_host() -> None:
    links = classify_links(
        [
            "https://github.com/a/b",
            "https://huggingface.co/datasets/x/y",
            "https://huggingface.co/org/model",
            "https://huggingface.co/spaces/org/demo",
            "https://arxiv.org/pdf/2401.00001",
            "https://example.org/project",
        ]
    )
    assert links.code == ["https://github.com/a/b"]
    assert links.datasets == ["https://huggingface.co/datasets/x/y"]
    assert links.models == ["https://huggingface.co/org/model"]
    assert links.project == [
        "https://huggingface.co/spaces/org/demo",
        "https://example.org/project",
    ]
    assert links.pdf == ["https://arxiv.org/pdf/2401.00001"]
