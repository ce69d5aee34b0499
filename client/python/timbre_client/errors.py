"""The exceptions of timbre_client: one TimbreError subclass per gRPC status code.

Every error a call raises is a TimbreError carrying the gRPC `code` (grpc.StatusCode) and the
server's `message` (for example "speaker 'bob' not found"). Bad input found by the client before
sending (a 3-D array, an integer dtype) raises InvalidArgument too, which is also a ValueError.
"""
from typing import Dict, Optional, Type

import grpc


class TimbreError(Exception):
    """A failed call: `code` is the grpc.StatusCode, `message` the server's (or client's) text."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class Cancelled(TimbreError):
    code = grpc.StatusCode.CANCELLED


class Unknown(TimbreError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(TimbreError, ValueError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(TimbreError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(TimbreError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(TimbreError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(TimbreError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(TimbreError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(TimbreError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(TimbreError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(TimbreError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(TimbreError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(TimbreError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(TimbreError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(TimbreError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(TimbreError):
    code = grpc.StatusCode.UNAUTHENTICATED


class BuildFailed(TimbreError):
    """A build job that ended failed or cancelled; `job` is its final timbre.v1.BuildJob."""

    code = grpc.StatusCode.ABORTED

    def __init__(self, message: str, job):
        super().__init__(message)
        self.job = job


_BY_CODE: Dict[grpc.StatusCode, Type[TimbreError]] = {
    cls.code: cls
    for cls in (Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
                PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange,
                Unimplemented, Internal, Unavailable, DataLoss, Unauthenticated)
}


def from_rpc_error(error: grpc.RpcError) -> TimbreError:
    """The TimbreError subclass of a failed call's status, with the server's message."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    return _BY_CODE.get(code, TimbreError)(details or "", code)
