"""Tasks for the Flask example: make thumbnails of uploaded images, then publish a gallery."""

from __future__ import annotations

import zlib

from examples._local import make_app
from mageflow_celery import ReturnValue

app = make_app("flask_app")


@app.task(name="make-thumbnail", shared=False)
def make_thumbnail(image: str, size: int = 128) -> dict[str, object]:
    """Stands for resizing one image; returns the thumbnail's name and a fake checksum."""
    return {"image": image, "thumbnail": f"{image.rsplit('.', 1)[0]}_{size}px.png", "crc": zlib.crc32(image.encode())}


@app.task(name="publish-gallery", shared=False)
def publish_gallery(thumbnails: ReturnValue[list[dict[str, object]]], album: str) -> str:
    """Success callback: receives every thumbnail, in upload order."""
    first = thumbnails[0]["thumbnail"] if thumbnails else "-"
    return f"album {album!r} published with {len(thumbnails)} thumbnail(s), first {first}"
