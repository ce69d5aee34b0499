"""Client: numpy in, numpy out, over timbre's gRPC API (timbre.v1.Timbre and IndexBuilder).

Frames are [T, D] arrays (T frames of D = 256 for RVC v1 speakers, 768 for v2) of float32 or
float16 (RVC's half mode); answers come back in the request's dtype and shape. Every failed call
raises a timbre_client.TimbreError subclass carrying the gRPC code and the server's message.

Calls about one speaker carry the metadata `x-timbre-speaker: <name>` so that a load balancer
can route a speaker's calls to the replicas that hold it. Calls that fail with UNAVAILABLE are
retried by gRPC (see timbre_client.channel), and sessions reopen their stream (see
timbre_client.session).

Thread-safe: one Client may be used from several threads (its calls share one channel).
"""
import os
from typing import List, Optional, Tuple, Union

import grpc
import numpy as np

from timbre_client import builder
from timbre_client._proto.timbre.v1 import (build_job_pb2, index_builder_pb2,
                                            index_builder_pb2_grpc, timbre_pb2, timbre_pb2_grpc)
from timbre_client.channel import (affinity_metadata, make_channel, unwatch_connection,
                                   watch_connection)
from timbre_client.errors import BuildFailed, InvalidArgument, Unavailable, from_rpc_error
from timbre_client.frames import decode_frames, encode_frames
from timbre_client.options import retrieval_options
from timbre_client.session import BlendSession

SpeakerInfo = timbre_pb2.SpeakerInfo
FeatureSet = index_builder_pb2.FeatureSet
BuildJob = build_job_pb2.BuildJob
BuildReport = build_job_pb2.BuildReport
_FINAL_JOB_STATES = (BuildJob.STATE_SUCCEEDED, BuildJob.STATE_FAILED, BuildJob.STATE_CANCELLED)


class Client:
    """A connection to one timbre server (or a load balancer in front of several).

    target: "host:port". tls: use TLS with the system's CAs (implied by ca, cert, key or
    server_name). ca: PEM file of the CAs the server's certificate must chain to. cert, key: PEM
    files of a client certificate and its key, for servers that require one (mTLS); both or
    neither. server_name: the name the server's certificate must carry when it is not the
    target's host. token: bearer token sent with every call (needs TLS). timeout: deadline of
    each unary call in seconds (default 30; None: no deadline). retries: retries of a call that
    fails with UNAVAILABLE, and reopenings in a row of a session's stream (default 4; 0
    disables both). max_message_bytes: largest message sent or received (default 64 MiB).

    Raises InvalidArgument for an empty target, cert without key, a token without TLS, a
    negative retries or an unreadable TLS file. Does not connect until the first call.
    """

    def __init__(self, target: str, *, tls: bool = False, ca: Optional[str] = None,
                 cert: Optional[str] = None, key: Optional[str] = None,
                 server_name: Optional[str] = None, token: Optional[str] = None,
                 timeout: Optional[float] = 30.0, retries: int = 4,
                 max_message_bytes: int = 64 << 20):
        self._channel = make_channel(target, tls=tls, ca=ca, cert=cert, key=key,
                                     server_name=server_name, token=token, retries=retries,
                                     max_message_bytes=max_message_bytes)
        watch_connection(self._channel)
        self._timbre = timbre_pb2_grpc.TimbreStub(self._channel)
        self._builder = index_builder_pb2_grpc.IndexBuilderStub(self._channel)
        self.timeout = timeout
        self.retries = retries

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        unwatch_connection(self._channel)
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- Serving ---------------------------------------------------------------------------

    def blend(self, speaker: str, frames, *, k: Optional[int] = None,
              index_rate: Optional[float] = None, nprobe: Optional[int] = None,
              k_factor: Optional[int] = None) -> np.ndarray:
        """RVC's retrieval blend of `frames` with `speaker`'s index.

        frames: [T, D] (or one [D] frame) float32 or float16; float64 is sent as float32,
        non-contiguous arrays are copied. Returns the blended frames, same shape and dtype
        (float32 for float64 input): index_rate * retrieved + (1 - index_rate) * frames, with
        retrieved the 1/d^2-weighted mean of the k nearest stored frames.
        Options (None: the server's default): k (8), index_rate (0.75), nprobe (the index's),
        k_factor (the version's). Raises NotFound, InvalidArgument (bad frames or options,
        naming the problem), FailedPrecondition, ResourceExhausted, Unavailable, ...
        """
        message, single = encode_frames(frames)
        request = timbre_pb2.BlendRequest(
            speaker=speaker, frames=message,
            options=retrieval_options(k, index_rate, nprobe, k_factor))
        response = self._call(self._timbre.Blend, request, speaker)
        return decode_frames(response.frames, single)

    def search(self, speaker: str, frames, k: int = 8, *, nprobe: Optional[int] = None,
               k_factor: Optional[int] = None, with_vectors: bool = False
               ) -> Union[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The k nearest stored frames of each frame, as faiss's `index.search` returns them.

        frames: [T, D] (or [D]) float32 or float16. Returns (distances [T, k] float32, ids
        [T, k] int64), nearest first, id -1 where fewer than k were found; distances are squared
        L2 (inner products for inner-product indexes). With with_vectors, also the stored
        vectors [T, k, D] in the frames' dtype (zero rows for missing neighbours). A 1-D frame
        gives [k] and [k, D]. Raises as blend.
        """
        message, single = encode_frames(frames)
        request = timbre_pb2.SearchRequest(
            speaker=speaker, frames=message,
            options=retrieval_options(k, None, nprobe, k_factor), include_vectors=with_vectors)
        response = self._call(self._timbre.Search, request, speaker)
        shape = (response.num_frames, response.k)
        distances = np.array(response.distances, dtype=np.float32).reshape(shape)
        ids = np.array(response.ids, dtype=np.int64).reshape(shape)
        if single:
            distances, ids = distances[0], ids[0]
        if not with_vectors:
            return distances, ids
        vectors = decode_frames(response.vectors).reshape(shape + (response.vectors.dim,))
        return distances, ids, vectors[0] if single else vectors

    def session(self, speaker: str, *, k: Optional[int] = None,
                index_rate: Optional[float] = None, nprobe: Optional[int] = None,
                k_factor: Optional[int] = None, timeout: Optional[float] = None) -> BlendSession:
        """A real-time session (BlendStream) for `speaker`: `session.blend(block)` per block.

        Options as blend; timeout: deadline of each stream in seconds (default none: a session
        lasts as long as the caller keeps it). The stream opens at the first block. Use it as a
        context manager or call close().
        """
        return BlendSession(self._timbre, speaker,
                            retrieval_options(k, index_rate, nprobe, k_factor), self.retries,
                            timeout)

    def speakers(self) -> List[SpeakerInfo]:
        """Every speaker of the server's repository, sorted by name, with its state."""
        return list(self._call(self._timbre.ListSpeakers, timbre_pb2.ListSpeakersRequest())
                    .speakers)

    def speaker(self, name: str) -> SpeakerInfo:
        """One speaker: state, dim, vectors, index description, version, memory. NotFound if none."""
        return self._call(self._timbre.GetSpeaker, timbre_pb2.GetSpeakerRequest(speaker=name),
                          name)

    def load(self, name: str, *, warmup: bool = False) -> SpeakerInfo:
        """Admin: loads `name` now (warmed up if `warmup`) and returns it once loaded."""
        return self._call(self._timbre.LoadSpeaker,
                          timbre_pb2.LoadSpeakerRequest(speaker=name, warmup=warmup), name)

    def unload(self, name: str) -> SpeakerInfo:
        """Admin: frees `name`'s index memory; its next call loads it again."""
        return self._call(self._timbre.UnloadSpeaker,
                          timbre_pb2.UnloadSpeakerRequest(speaker=name), name)

    # --- Building (admin) ------------------------------------------------------------------

    def upload(self, path: Union[str, os.PathLike], *,
               progress: Optional[builder.UploadProgress] = None,
               chunk_bytes: int = 4 << 20) -> FeatureSet:
        """Uploads RVC feature files: one .npy file or every *.npy in a directory.

        Files are float32 or float16 [n, 256] or [n, 768]. progress(sent_bytes, total_bytes) is
        called after each chunk (from gRPC's sending thread). No deadline. Returns the published
        feature set (its `id` is what build(features=...) takes). Raises FileNotFoundError for
        a missing path, InvalidArgument for a directory without .npy files or a file the server
        refuses (naming it), and the server's other errors.
        """
        if chunk_bytes <= 0:
            raise InvalidArgument(f"chunk_bytes is {chunk_bytes}: give a positive size")
        files = builder.feature_files(path)
        requests = builder.upload_requests(files, chunk_bytes, progress)
        return self._call(self._builder.UploadFeatures, requests, timeout=None)

    def build(self, speaker: str, *, input: Optional[Union[str, os.PathLike]] = None,
              features: Optional[str] = None,
              recipe: Union[str, build_job_pb2.Recipe] = "rvc", seed: Optional[int] = None,
              comment: str = "", progress: Optional[builder.BuildProgress] = None,
              upload_progress: Optional[builder.UploadProgress] = None) -> BuildReport:
        """Builds and publishes a new index version of `speaker`; returns the job's report.

        Exactly one of input (a .npy file or directory, uploaded first) and features (the id of
        an uploaded feature set). recipe: "rvc", "fastscan", "auto", a faiss factory string, or
        a timbre.v1.Recipe. seed: the shuffle seed (default: the server picks one and reports
        it). progress(job) gets every job record while it runs. No deadline. Raises BuildFailed
        (with `.job`) when the job fails or is cancelled, InvalidArgument for a refused recipe,
        and the upload's and server's errors.
        """
        if (input is None) == (features is None):
            raise InvalidArgument("give exactly one of input= (a .npy file or directory) and "
                                  "features= (a feature-set id)")
        request = index_builder_pb2.BuildIndexRequest(
            speaker=speaker, recipe=builder.recipe_named(recipe, seed), comment=comment)
        if input is not None:
            features = self.upload(input, progress=upload_progress).id
        request.feature_set_id = features
        job = self._call(self._builder.BuildIndex, request)
        job = self.wait(job.id, progress=progress)
        if job.state != BuildJob.STATE_SUCCEEDED:
            state = BuildJob.State.Name(job.state).removeprefix("STATE_").lower()
            raise BuildFailed(f"job {job.id} {state}: {job.error}", job)
        return job.report

    def wait(self, job_id: str, *, progress: Optional[builder.BuildProgress] = None) -> BuildJob:
        """Follows a job until it ends; progress(job) gets every record. Returns the last one."""
        last = None
        try:
            for job in self._builder.WatchJob(index_builder_pb2.WatchJobRequest(id=job_id)):
                last = job
                if progress is not None:
                    progress(job)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        if last is None or last.state not in _FINAL_JOB_STATES:
            raise Unavailable(f"job {job_id}: the watch ended before the job did")
        return last

    def job(self, job_id: str) -> BuildJob:
        """A build job: state, stage, fraction done, error, report."""
        return self._call(self._builder.GetJob, index_builder_pb2.GetJobRequest(id=job_id))

    def jobs(self) -> List[BuildJob]:
        """Every build job the server knows."""
        return list(self._call(self._builder.ListJobs, index_builder_pb2.ListJobsRequest()).jobs)

    def cancel(self, job_id: str) -> BuildJob:
        """Cancels a queued or running job; returns its record."""
        return self._call(self._builder.CancelJob, index_builder_pb2.CancelJobRequest(id=job_id))

    def feature_sets(self) -> List[FeatureSet]:
        """Every feature set on the server."""
        return list(self._call(self._builder.ListFeatureSets,
                               index_builder_pb2.ListFeatureSetsRequest()).feature_sets)

    _DEFAULT = object()

    def _call(self, method, request, speaker: Optional[str] = None, timeout=_DEFAULT):
        try:
            return method(request, timeout=self.timeout if timeout is Client._DEFAULT else timeout,
                          metadata=affinity_metadata(speaker) if speaker is not None else None)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
