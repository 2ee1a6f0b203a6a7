"""`lab clean`'s order of removal, against an engine that refuses what Docker refuses: an image
with children, until the children are gone. The engine is a stand-in for `lab.engine.Engine`
with the same methods; nothing here talks to Docker."""

from __future__ import annotations

import argparse

import pytest

from lab.commands import clean
from lab.engine import APIError, NotFound
from lab.errors import RunError


class Obj:
    def __init__(self, engine: FakeEngine, kind: str, name: str) -> None:
        self.engine, self.kind, self.name = engine, kind, name
        self.id = f"sha256:{name:0<16}"
        self.tags = [name]

    def remove(self, **_kwargs) -> None:
        self.engine.removed.append(f"{self.kind} {self.name}")


class FakeEngine:
    def __init__(self, images: dict[str, str | None]) -> None:
        self.removed: list[str] = []
        self.parents = images  # image -> parent image
        self.images = [Obj(self, "image", name) for name in images]

    def project_containers(self) -> list[Obj]:
        return [Obj(self, "container", "tcplab-r-m-server")]

    def project_networks(self) -> list[Obj]:
        return [Obj(self, "network", "tcplab-r-m")]

    def project_images(self) -> list[Obj]:
        return self.images

    def remove_image(self, image_id: str) -> None:
        (name,) = [i.name for i in self.images if i.id == image_id]
        if f"image {name}" in self.removed:
            raise NotFound("gone")
        if any(p == name and f"image {c}" not in self.removed for c, p in self.parents.items()):
            raise APIError("409", explanation=f"conflict: {name} has dependent child images")
        self.removed.append(f"image {name}")


def run_clean(engine: FakeEngine, *, images: bool) -> tuple[list[str], list[str]]:
    failed: list[str] = []

    def attempt(kind, name, fn) -> bool:
        try:
            fn()
        except NotFound:
            return True
        except APIError as exc:
            failed.append(f"{kind} {name}: {exc.explanation}")
            return False
        return True

    clean._clean(engine, attempt, failed, images=images)
    return engine.removed, failed


def test_containers_then_networks_and_no_images_unless_asked():
    removed, failed = run_clean(FakeEngine({"base": None}), images=False)
    assert removed == ["container tcplab-r-m-server", "network tcplab-r-m"]
    assert failed == []


def test_children_go_before_their_base_whatever_the_listing_order():
    engine = FakeEngine({"base": None, "server": "base", "client": "base"})
    removed, failed = run_clean(engine, images=True)
    images = [r for r in removed if r.startswith("image")]
    assert sorted(images) == ["image base", "image client", "image server"]
    assert images[-1] == "image base"
    assert failed == []  # the first pass's refusal of the base was not final


class StuckEngine(FakeEngine):
    def remove_image(self, image_id: str) -> None:
        raise APIError("409", explanation="image is being used by a running container")

    def close(self) -> None:
        pass


def test_an_image_that_stays_refused_is_reported(monkeypatch):
    engine = StuckEngine({"base": None, "child": "base"})
    monkeypatch.setattr(clean.Engine, "from_env", lambda: engine)
    with pytest.raises(RunError, match=r"could not remove 2 object.*being used"):
        clean.run(argparse.Namespace(images=True))
    assert engine.removed == ["container tcplab-r-m-server", "network tcplab-r-m"]
