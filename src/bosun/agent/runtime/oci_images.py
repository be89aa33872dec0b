"""Images of the oci driver: the node's image store, pulls under the pod's pull policy (one
pull per image however many pods ask at once), and what an image asks for by default.

Why a module: pulling and resolving images is the one part of the driver that talks to
registries; the rest only reads the store.
"""

from __future__ import annotations

import asyncio

from bosun.agent.images.reference import InvalidReference, parse
from bosun.agent.images.registry import PullError, is_insecure, pull
from bosun.agent.images.store import ImageRecord, ImageStore, image_defaults
from bosun.agent.runtime import oci_bundle as ob
from bosun.agent.runtime.base import HOST_IMAGE, ImageError, ImageInfo, PullPolicy


class ImagePuller:
    def __init__(self, store: ImageStore, insecure_registries: tuple[str, ...], pull_timeout: float) -> None:
        self.store = store
        self.insecure_registries = tuple(insecure_registries)
        self.pull_timeout = pull_timeout
        self._pulls: dict[str, asyncio.Task[ImageRecord]] = {}

    def close(self) -> None:
        for task in self._pulls.values():
            task.cancel()

    def _info(self, rec: ImageRecord, name: str) -> ImageInfo:
        d = image_defaults(rec.config)
        return ImageInfo(name=name, id=rec.id, entrypoint=d["entrypoint"], cmd=d["cmd"], env=d["env"],
                         working_dir=d["working_dir"], user=d["user"])

    async def ensure(self, image: str, policy: PullPolicy) -> ImageInfo:
        """Make ``image`` available under ``policy`` or raise :class:`ImageError`."""
        if image in ("", HOST_IMAGE):
            return ImageInfo(name=HOST_IMAGE, id=HOST_IMAGE, env=[("PATH", ob.DEFAULT_PATH)])
        try:
            ref = parse(image)
        except InvalidReference as e:
            raise ImageError("InvalidImageName", f"invalid image name {image!r}: {e}") from e
        rec = self.store.lookup(str(ref))
        if rec is not None and (policy != PullPolicy.ALWAYS or ref.digest):
            return self._info(rec, image)
        if policy == PullPolicy.NEVER:
            raise ImageError("ErrImageNeverPull",
                             f'Container image "{image}" is not present with pull policy of Never')
        key = str(ref)
        task = self._pulls.get(key)
        if task is None:
            insecure = is_insecure(ref.registry, self.insecure_registries)
            task = asyncio.ensure_future(pull(self.store, ref, insecure=insecure, timeout=self.pull_timeout))
            self._pulls[key] = task
            task.add_done_callback(lambda _t: self._pulls.pop(key, None))
        try:
            rec = await asyncio.shield(task)
        except PullError as e:
            raise ImageError("ErrImagePull", f'failed to pull image "{image}": {e}') from e
        return self._info(rec, image)
