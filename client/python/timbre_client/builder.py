"""Feature-set uploads and index builds over timbre.v1.IndexBuilder, used by Client.

An upload sends `.npy` files (a file, or every *.npy directly inside a directory, sorted by name
as Python's `sorted` does) in chunks, each file announced with its size and SHA-256; the server
verifies both and validates the arrays before it publishes the set.
"""
import hashlib
import os
from typing import Callable, Iterator, List, Optional, Union

from timbre_client._proto.timbre.v1 import build_job_pb2, index_builder_pb2
from timbre_client.errors import InvalidArgument

# progress(sent_bytes, total_bytes), called after every chunk sent.
UploadProgress = Callable[[int, int], None]
# progress(job): every timbre.v1.BuildJob record the server streams while the job runs.
BuildProgress = Callable[[build_job_pb2.BuildJob], None]

_NAMED_RECIPES = {"rvc": build_job_pb2.Recipe.KIND_RVC,
                  "fastscan": build_job_pb2.Recipe.KIND_FASTSCAN,
                  "auto": build_job_pb2.Recipe.KIND_AUTO}


def feature_files(path: Union[str, os.PathLike]) -> List[str]:
    """The .npy files an upload of `path` sends.

    Raises FileNotFoundError for a missing path, InvalidArgument for a directory without .npy
    files.
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no such file or directory '{path}'")
    names = sorted(name for name in os.listdir(path)
                   if name.endswith(".npy") and os.path.isfile(os.path.join(path, name)))
    if not names:
        raise InvalidArgument(f"'{path}' holds no .npy files")
    return [os.path.join(path, name) for name in names]


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def upload_requests(files: List[str], chunk_bytes: int,
                    progress: Optional[UploadProgress]) -> Iterator[
                        index_builder_pb2.UploadFeaturesRequest]:
    """The UploadFeatures messages of `files`: per file a header, then its chunks."""
    headers = [index_builder_pb2.UploadFeaturesRequest.FileHeader(
        name=os.path.basename(path), size_bytes=os.path.getsize(path), sha256=_sha256(path))
        for path in files]
    total = sum(header.size_bytes for header in headers)
    sent = 0
    for path, header in zip(files, headers):
        yield index_builder_pb2.UploadFeaturesRequest(file=header)
        with open(path, "rb") as file:
            for chunk in iter(lambda: file.read(chunk_bytes), b""):
                yield index_builder_pb2.UploadFeaturesRequest(chunk=chunk)
                sent += len(chunk)
                if progress is not None:
                    progress(sent, total)


def recipe_named(recipe: Union[str, build_job_pb2.Recipe],
                 seed: Optional[int]) -> build_job_pb2.Recipe:
    """"rvc", "fastscan", "auto", any faiss factory string, or a Recipe message as it is."""
    if isinstance(recipe, build_job_pb2.Recipe):
        message = build_job_pb2.Recipe()
        message.CopyFrom(recipe)
    elif isinstance(recipe, str) and recipe:
        kind = _NAMED_RECIPES.get(recipe, build_job_pb2.Recipe.KIND_FACTORY)
        message = build_job_pb2.Recipe(kind=kind)
        if kind == build_job_pb2.Recipe.KIND_FACTORY:
            message.factory = recipe
    else:
        raise InvalidArgument(f"recipe is {recipe!r}: give 'rvc', 'fastscan', 'auto', a faiss "
                              "factory string or a timbre.v1.Recipe")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 32:
            raise InvalidArgument(f"seed is {seed!r}: give an integer in [0, 2^32)")
        message.shuffle_seed = seed
    return message
