"""A real-time voice-changer loop written with timbre_client, timed end to end.

Each of CLIENTS processes (separate Python interpreters, as separate voice changers are) opens
its own Client, sends one call of FRAMES frames every 1/RATE seconds (RVC's default block: 16
frames, 4 calls/s) for DURATION seconds, unary blend or a BlendStream session, and times every
call (encode, gRPC on loopback, server, decode). The processes start together after warming up.
Prints one JSON object: calls, errors, p50/p99 ms over all calls.
    python3 python_client_loop.py TARGET SPEAKER QUERIES.npy --clients N [--rate 4]
        [--frames 16] [--duration 30] [--mode unary|session] [--dtype float32|float16]
"""
import argparse
import json
import multiprocessing
import time

import numpy as np


def client_loop(number, args, ready, start_at, results):
    from timbre_client import Client, TimbreError  # imported in the child: no gRPC before fork
    queries = np.load(args.queries).astype(args.dtype)
    client = Client(args.target, timeout=30)
    session = client.session(args.speaker) if args.mode == "session" else None

    def call(frames):
        if session is not None:
            return session.blend(frames)
        return client.blend(args.speaker, frames)

    rows = len(queries) - args.frames
    try:
        for warm_up in range(5):
            call(queries[warm_up * args.frames:(warm_up + 1) * args.frames])
    finally:
        ready.release()  # a client whose warm-up failed still runs, and counts its errors
    while start_at.value == 0:
        time.sleep(0.005)
    period = 1.0 / args.rate
    next_call = start_at.value + period * number / args.clients  # spread over one period
    end = start_at.value + args.duration
    latencies, errors, position = [], 0, (number * 997 * args.frames) % rows
    while True:
        now = time.time()
        if next_call >= end:
            break
        if next_call > now:
            time.sleep(next_call - now)
        frames = queries[position:position + args.frames]
        position = (position + args.frames) % rows
        started = time.perf_counter()
        try:
            call(frames)
            latencies.append((time.perf_counter() - started) * 1e3)
        except TimbreError:
            errors += 1
        next_call = max(next_call + period, time.time())
    if session is not None:
        session.close()
    client.close()
    results.put((latencies, errors))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("speaker")
    parser.add_argument("queries")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--rate", type=float, default=4)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--mode", choices=("unary", "session"), default="unary")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    ready = context.Semaphore(0)
    start_at = context.Value("d", 0.0)
    results = context.Queue()
    processes = [context.Process(target=client_loop, args=(n, args, ready, start_at, results))
                 for n in range(args.clients)]
    for process in processes:
        process.start()
    for _ in processes:
        if not ready.acquire(timeout=300):
            raise SystemExit("a client did not get ready within 300 s")
    start_at.value = time.time() + 0.5
    latencies, errors = [], 0
    for _ in processes:
        part, part_errors = results.get(timeout=args.duration + 120)
        latencies += part
        errors += part_errors
    for process in processes:
        process.join()
    print(json.dumps({"clients": args.clients, "mode": args.mode, "dtype": args.dtype,
                      "calls": len(latencies), "errors": errors,
                      "calls_per_second": len(latencies) / args.duration,
                      "p50_ms": float(np.percentile(latencies, 50)),
                      "p99_ms": float(np.percentile(latencies, 99))}))


if __name__ == "__main__":
    main()
