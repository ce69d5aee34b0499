"""A scripted in-process timbre server (Python gRPC) for the client's routing and retry tests.

It records every call's method and metadata, fails calls with a chosen status a chosen number
of times, and plays BlendStream scripts, on a free loopback port.
"""
import collections
import threading
from concurrent import futures

import grpc

from timbre_client._proto.timbre.v1 import (build_job_pb2, index_builder_pb2,
                                            index_builder_pb2_grpc, timbre_pb2, timbre_pb2_grpc)

ANSWER = "answer"
END = "end"  # a stream plan's action: end the stream with OK without answering


class FakeServer(timbre_pb2_grpc.TimbreServicer, index_builder_pb2_grpc.IndexBuilderServicer):
    """failures[method] = (code, times): the first `times` attempts fail with `code`.
    stream_plan(stream_number, block_in_stream) -> ANSWER, or a grpc.StatusCode or a
    (grpc.StatusCode, details) pair to end the stream with."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []                      # (method, metadata dict), one per attempt
        self.attempts = collections.Counter()
        self.failures = {}
        self.streams = []                    # requests received, per BlendStream opened
        self.stream_plan = lambda stream, block: ANSWER
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        timbre_pb2_grpc.add_TimbreServicer_to_server(self, self.server)
        index_builder_pb2_grpc.add_IndexBuilderServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.target = f"127.0.0.1:{self.port}"
        self.server.start()

    def stop(self):
        self.server.stop(grace=None).wait()

    def headers(self, method):
        """The x-timbre-speaker values of every attempt of `method`."""
        return [metadata.get("x-timbre-speaker") for name, metadata in self.calls if name == method]

    def _enter(self, method, context):
        with self.lock:
            self.calls.append((method, dict(context.invocation_metadata())))
            self.attempts[method] += 1
            attempt = self.attempts[method]
        code, times = self.failures.get(method, (None, 0))
        if attempt <= times:
            context.abort(code, f"{method}: attempt {attempt} fails")

    # timbre.v1.Timbre
    def Blend(self, request, context):
        self._enter("Blend", context)
        return timbre_pb2.BlendResponse(frames=request.frames)

    def Search(self, request, context):
        self._enter("Search", context)
        return timbre_pb2.SearchResponse(num_frames=request.frames.num_frames, k=0)

    def ListSpeakers(self, request, context):
        self._enter("ListSpeakers", context)
        return timbre_pb2.ListSpeakersResponse()

    def GetSpeaker(self, request, context):
        self._enter("GetSpeaker", context)
        return timbre_pb2.SpeakerInfo(name=request.speaker)

    def LoadSpeaker(self, request, context):
        self._enter("LoadSpeaker", context)
        return timbre_pb2.SpeakerInfo(name=request.speaker)

    def UnloadSpeaker(self, request, context):
        self._enter("UnloadSpeaker", context)
        return timbre_pb2.SpeakerInfo(name=request.speaker)

    def BlendStream(self, request_iterator, context):
        self._enter("BlendStream", context)
        with self.lock:
            number = len(self.streams)
            received = []
            self.streams.append(received)
        for block, request in enumerate(request_iterator):
            received.append(request)
            action = self.stream_plan(number, block)
            if action == END:
                return
            if isinstance(action, tuple):  # (code, details): a proxy's own ending
                context.abort(*action)
            if action != ANSWER:
                context.abort(action, f"stream {number} ends at block {block}")
            yield timbre_pb2.BlendStreamResponse(frames=request.frames, block_index=block)

    # timbre.v1.IndexBuilder
    def GetJob(self, request, context):
        self._enter("GetJob", context)
        return build_job_pb2.BuildJob(id=request.id)

    def WatchJob(self, request, context):
        """Streams one running record of the job, then ends: a watch cut short."""
        self._enter("WatchJob", context)
        yield build_job_pb2.BuildJob(id=request.id, state=build_job_pb2.BuildJob.STATE_RUNNING)

    def ListJobs(self, request, context):
        self._enter("ListJobs", context)
        return index_builder_pb2.ListJobsResponse()

    def CancelJob(self, request, context):
        self._enter("CancelJob", context)
        return build_job_pb2.BuildJob(id=request.id)

    def BuildIndex(self, request, context):
        self._enter("BuildIndex", context)
        return build_job_pb2.BuildJob(id="job-1")
