#!/usr/bin/env bash
# Makes the Dockerfile's base images on a machine with no Docker engine and no image registry:
# installs Debian's podman and debootstrap, bootstraps a minimal Debian bookworm root filesystem
# from the Debian archive that apt already uses, and imports it into podman as debian:bookworm
# and debian:bookworm-slim. Builds then run with chroot isolation:
#   podman build --isolation=chroot --network=host -t timbre .
# Safe to run again: it skips what is already there. Needs root. A few minutes the first time.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
[ "$(id -u)" -eq 0 ] || { echo "make-base-image: needs root (debootstrap, podman import)" >&2; exit 2; }
if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq podman buildah debootstrap >/dev/null
fi
if podman image exists docker.io/library/debian:bookworm \
   && podman image exists docker.io/library/debian:bookworm-slim; then
  echo "make-base-image: debian:bookworm is already imported"; exit 0
fi
mirror=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' \
           | grep -m1 '/debian/*$' || true)
[ -n "$mirror" ] || mirror=$(grep -h -o -E '^deb +[^ ]+/debian/? ' /etc/apt/sources.list 2>/dev/null \
                               | awk '{print $2}' | head -1)
[ -n "$mirror" ] || { echo "make-base-image: no Debian mirror found in the apt sources" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "make-base-image: debootstrap bookworm from $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
# The image's apt uses this machine's sources, so builds inside it reach the same archive.
cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/" 2>/dev/null || true
if ls "$root"/etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then rm -f "$root/etc/apt/sources.list"; fi
tar -C "$root" -c . | podman import - docker.io/library/debian:bookworm >/dev/null
podman tag docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim
podman images debian
