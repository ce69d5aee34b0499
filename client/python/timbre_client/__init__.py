"""timbre_client: a Python client of timbre, the gRPC server of RVC's feature-retrieval step.

    from timbre_client import Client
    with Client("localhost:50051") as client:
        out = client.blend("alice", feats)            # [T, 768] float16/float32 in and out
        with client.session("alice", index_rate=0.5) as session:
            out = session.blend(block)                # real time, one block per call

timbre_client.rvc.RemoteIndex stands in for RVC's faiss index and big_npy.
"""
from timbre_client.client import BuildJob, BuildReport, Client, FeatureSet, SpeakerInfo
from timbre_client.errors import (Aborted, AlreadyExists, BuildFailed, Cancelled, DataLoss,
                                  DeadlineExceeded, FailedPrecondition, Internal, InvalidArgument,
                                  NotFound, OutOfRange, PermissionDenied, ResourceExhausted,
                                  TimbreError, Unauthenticated, Unavailable, Unimplemented,
                                  Unknown)
from timbre_client.session import BlendSession

__version__ = "0.1.0"
__all__ = ["Client", "BlendSession", "SpeakerInfo", "FeatureSet", "BuildJob", "BuildReport",
           "TimbreError", "Aborted", "AlreadyExists", "BuildFailed", "Cancelled", "DataLoss",
           "DeadlineExceeded", "FailedPrecondition", "Internal", "InvalidArgument", "NotFound",
           "OutOfRange", "PermissionDenied", "ResourceExhausted", "Unauthenticated",
           "Unavailable", "Unimplemented", "Unknown"]
