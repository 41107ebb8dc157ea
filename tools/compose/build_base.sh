#!/usr/bin/env bash
# A local Debian bookworm base image for the project's Dockerfile, for machines that can run
# containers (podman) but cannot pull images: debootstrap (minbase + Python 3.11 + venv), this
# machine's CA store copied in (so builds reach the package registries through the same TLS
# proxy the host uses), imported as localhost/debian-base:bookworm. Then:
#   podman --runtime runc build --build-arg BASE_IMAGE=localhost/debian-base:bookworm -t autoretrain:local .
# Measured here: debootstrap 45 s, import 5 s, image build 41 s (298 packages from the lock), 1.6 GB.
set -euo pipefail
IMAGE=${1:-localhost/debian-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ROOTFS=$(mktemp -d /tmp/debian-base.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOTFS" "$MIRROR" >/dev/null
cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
fi
tar -C "$ROOTFS" -c . | podman import - "$IMAGE" >/dev/null
echo "$IMAGE: $(podman run --rm "$IMAGE" python3 --version)"
