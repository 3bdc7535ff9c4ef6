"""The committed AsyncAPI documents are what each service's code generates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from solidarity.shared.asyncapi import generate, stale
from solidarity.shared.contracts.topics import TOPICS
from solidarity.shared.service import discover_services

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[3] / "docs" / "asyncapi"


def test_committed_documents_are_current() -> None:
    assert stale(DOCS) == [], "run `solidarity asyncapi` and commit docs/asyncapi/"


@pytest.mark.parametrize("spec", discover_services(), ids=lambda s: s.name)
def test_each_document_shows_every_topic_the_service_publishes_and_consumes(spec) -> None:
    document = generate(spec)
    addresses = {channel["address"] for channel in document["channels"].values()}
    for topic in TOPICS:
        if topic.producer == spec.name or spec.name in topic.consumers:
            assert topic.name in addresses, f"{spec.name}'s document lacks {topic.name}"


def test_an_edited_document_is_reported_stale(tmp_path: Path) -> None:
    shutil.copytree(DOCS, tmp_path, dirs_exist_ok=True)
    first = sorted(tmp_path.glob("*.json"))[0]
    document = json.loads(first.read_text())
    document["info"]["title"] = "edited by hand"
    first.write_text(json.dumps(document))
    assert stale(tmp_path) == [f"{first} is stale"]
