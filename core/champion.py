"""The champion: the ranker in production, which a candidate must beat to be blessed.

A pipeline run names it by reference, in whichever form the team has at hand:
- an exported Bento (a ``.bento`` archive, whatever its file is called), on local disk or
  object storage (``s3://…``): for example the ``bento`` artifact of the run that built it,
  which Kubeflow keeps under its pipeline root;
- a Bento tag in this process's BentoML store (``searchrank:<version>``), or the ranker's own
  model tag (``searchrank-ranker:<version>``);
- a ranker checkpoint folder (``model.pt`` and ``ranker.json``), local or on object storage:
  for example a previous run's ``train_ranker`` ``model`` artifact.

Whatever the form, :func:`resolve_champion` hands back a local checkpoint folder that the
evaluation scores like any ranker.
"""

from __future__ import annotations

import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from searchrank.core import checkpoint as ckpt
from searchrank.core.errors import InputError
from searchrank.core.names import BENTO_NAME, RANKER_MODEL_NAME

FORMS = (
    "an exported Bento (a .bento file, a path or s3:// URI), a Bento or model tag in the "
    f"BentoML store ({BENTO_NAME}:<version>, {RANKER_MODEL_NAME}:<version>), or a ranker "
    "checkpoint folder (a path or s3:// URI holding ranker.json and model.pt)"
)


@dataclass(frozen=True)
class Champion:
    """A resolved champion.

    Attributes:
        reference: what the run named.
        model_dir: a local ranker checkpoint folder.
    """

    reference: str
    model_dir: Path


def resolve_champion(reference: str, workdir: Path) -> Champion:
    """Find the ranker that ``reference`` names (see the module docstring) and make it a local
    checkpoint folder under ``workdir``.

    Raises:
        InputError: the reference is none of the accepted forms, cannot be read, or holds no
            ranker checkpoint.
    """
    from searchrank.core import storage

    workdir.mkdir(parents=True, exist_ok=True)
    if "://" in reference:
        name = PurePosixPath(reference.rstrip("/")).name
        local = storage.download(reference, workdir / name, "champion")
    elif Path(reference).exists():
        local = Path(reference)
    else:
        return Champion(reference, _from_store(reference))
    if local.is_file():
        return Champion(reference, _ranker_from_archive(local, reference, workdir / "ranker"))
    _require_checkpoint(local, reference)
    return Champion(reference, local)


def _require_checkpoint(folder: Path, reference: str) -> None:
    try:
        ckpt.read_description(folder)
    except InputError as error:
        raise InputError("champion", reference, f"holds no ranker checkpoint ({error})") from error


def _ranker_from_archive(archive: Path, reference: str, dest: Path) -> Path:
    """Extract the ranker's two files from an exported Bento (a tar archive whose ``models/``
    folder holds each model as ``<name>/<version>/``)."""
    wanted = (ckpt.WEIGHTS, ckpt.DESCRIPTION)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = {
                PurePosixPath(m.name.removeprefix("./")): m for m in tar.getmembers() if m.isfile()
            }
            found = {
                path.name: member
                for path, member in members.items()
                if len(path.parts) == 4
                and path.parts[:2] == ("models", RANKER_MODEL_NAME)
                and path.name in wanted
            }
            if set(found) != set(wanted):
                raise InputError(
                    "champion", reference, f"is a Bento without a {RANKER_MODEL_NAME} model"
                )
            dest.mkdir(parents=True, exist_ok=True)
            for name, member in found.items():
                source = tar.extractfile(member)
                assert source is not None  # a regular file member
                with source, (dest / name).open("wb") as target:
                    shutil.copyfileobj(source, target)
    except tarfile.TarError as error:
        raise InputError(
            "champion", reference, f"is not a readable Bento archive ({error})"
        ) from error
    return dest


def _from_store(tag: str) -> Path:
    """The ranker's folder of a Bento or model tag in the BentoML store."""
    import bentoml
    from bentoml.exceptions import BentoMLException, NotFound

    if tag.split(":", 1)[0] != RANKER_MODEL_NAME:
        return ranker_in_bento(tag, "champion", unknown=f"must be {FORMS}")
    try:
        return Path(bentoml.models.get(tag).path)
    except (NotFound, BentoMLException, ValueError) as error:
        raise InputError("champion", tag, f"must be {FORMS}") from error


def ranker_in_bento(
    tag: str, field: str, unknown: str = "must be a Bento in the store (bentoml list)"
) -> Path:
    """The ranker checkpoint folder of the Bento ``tag`` in the BentoML store.

    Args:
        tag: the Bento's tag.
        field: what ``tag`` is, for error messages.
        unknown: the rule an unknown tag breaks.

    Raises:
        InputError: no such Bento, or one without a ranker.
    """
    import bentoml
    from bentoml.exceptions import BentoMLException, NotFound

    try:
        info = bentoml.bentos.get(tag).info
    except (NotFound, BentoMLException, ValueError) as error:
        raise InputError(field, tag, unknown) from error
    ranker = next((m for m in info.all_models if m.tag.name == RANKER_MODEL_NAME), None)
    if ranker is None:
        raise InputError(field, tag, f"must contain a {RANKER_MODEL_NAME} model")
    return Path(bentoml.models.get(ranker.tag).path)
