#!/usr/bin/env bash
# Builds a real Debian stack with debootstrap and imports it into Skiff:
#
#   deploy/stacks/debian.sh [NAME] [SUITE]        (defaults: debian, bookworm)
#
# Environment:
#   SKIFF_DEBIAN_PACKAGES  extra packages, comma-separated (e.g. "python3,nodejs")
#   SKIFF_DEBIAN_MIRROR    archive URL (default: the first Debian archive in this
#                          machine's apt sources)
#   SKIFF                  the skiff CLI (default: skiff on PATH), logged in as an admin
# Apps use it with `skiff apps:create NAME --stack debian`. Needs root (debootstrap).
set -euo pipefail
name=${1:-debian}
suite=${2:-bookworm}
skiff=${SKIFF:-skiff}
packages="ca-certificates${SKIFF_DEBIAN_PACKAGES:+,$SKIFF_DEBIAN_PACKAGES}"

if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

mirror=${SKIFF_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}')
fi
if [ -z "$mirror" ]; then
  mirror=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '$2 !~ /security/ {print $2; exit}')
fi
[ -n "$mirror" ] || { echo "debian.sh: no Debian archive found in apt sources; set SKIFF_DEBIAN_MIRROR" >&2; exit 1; }

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
echo "==> debootstrap $suite from $mirror (packages: $packages)"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >/dev/null
# Keep the image small: no package caches or lists.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
mkdir -p "$rootfs/app"
"$skiff" stacks:import "$name" "$rootfs"
