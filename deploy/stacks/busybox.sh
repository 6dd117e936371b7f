#!/usr/bin/env bash
# Builds a tiny stack from Debian's busybox-static (every applet linked under /bin) and
# imports it into Skiff:  deploy/stacks/busybox.sh [NAME]   (default NAME: busybox)
# Needs: a logged-in admin `skiff` on PATH (or SKIFF=/path/to/skiff), /bin/busybox static.
set -euo pipefail
name=${1:-busybox}
skiff=${SKIFF:-skiff}
busybox=/bin/busybox
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
  echo "busybox.sh: $busybox must be a static busybox; install it with: apt-get install busybox-static" >&2
  exit 1
fi
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{bin,etc,tmp,proc,sys,dev,app,root,usr/bin,var/www}
chmod 1777 "$rootfs/tmp"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
echo 'root:x:0:' > "$rootfs/etc/group"
echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >> "$rootfs/etc/passwd"
"$skiff" stacks:import "$name" "$rootfs"
