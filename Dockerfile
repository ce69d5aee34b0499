# timbre-server image. Everything comes from Debian bookworm's archive: the build stage installs
# the -dev packages and builds faiss 1.7.3 from Debian's source package (AVX2 when the build
# machine's CPU has it, else Debian's generic libfaiss-dev), then timbre; the runtime stage has
# only the shared libraries.
#   docker build -t timbre .
#   docker run -p 50051:50051 -p 9464:9464 -v /srv/speakers:/repo timbre
FROM debian:bookworm AS build
WORKDIR /src
COPY deploy/install-deps.sh deploy/install-deps.sh
RUN bash deploy/install-deps.sh --build-only && rm -rf /var/lib/apt/lists/* /opt/timbre/faiss/src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY proto proto
COPY server server
COPY client client
COPY tests tests
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build -j "$(nproc)" --target timbre-server timbre-index-probe timbre \
 && mkdir -p /opt/timbre/faiss/lib

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libspdlog1.10 libfmt9 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libopenblas0 libgomp1 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home timbre \
 && install -d -o timbre -g timbre /repo
COPY --from=build /opt/timbre/faiss/lib /opt/timbre/faiss/lib
# timbre-index-probe reads each index file once before the server does; it lives next to it.
COPY --from=build /src/build/server/timbre-server /src/build/server/timbre-index-probe \
     /src/build/client/timbre /usr/local/bin/
ENV LD_LIBRARY_PATH=/opt/timbre/faiss/lib
USER timbre
EXPOSE 50051 9464
VOLUME ["/repo"]
ENTRYPOINT ["timbre-server", "--repo=/repo"]
