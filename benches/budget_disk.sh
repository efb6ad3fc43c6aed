#!/usr/bin/env bash
# Overlapping group-commit syncs on a disk with an operations budget: an
# ext4 file system on a loop device whose writes the kernel throttles to
# CPWAL_BUDGET_IOPS per second (default 250) for this script's processes,
# as a cloud volume at its IOPS limit is. It runs the concurrent bench's
# long runs there (`CPWAL_BENCH_LONG_RUNS` seconds each, default 4): one
# sync in flight, the default, a second sync at once; 4 and 16 threads;
# each sync as the disk makes it, then 4 ms late.
#
# Needs root, a free loop device, mkfs.ext4 and the cgroup-v1 blkio
# controller (/sys/fs/cgroup/blkio). On cgroup v2, the same limit is
# "MAJ:MIN wiops=N" in the io.max of a cgroup with the io controller; this
# script does not set that up (the machine it was written on has v1 only).
#
# Usage: benches/budget_disk.sh   (from the repository, about 7 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
iops=${CPWAL_BUDGET_IOPS:-250}
seconds=${CPWAL_BENCH_LONG_RUNS:-4}
blkio=/sys/fs/cgroup/blkio
if [ "$(id -u)" != 0 ]; then
  echo "budget_disk: needs root (loop device, mount, cgroup)" >&2
  exit 1
fi
if [ ! -d "$blkio" ]; then
  echo "budget_disk: no cgroup-v1 blkio controller at $blkio" >&2
  exit 1
fi

# Build first, outside the throttle.
cargo bench --bench concurrent --no-run

work=$(mktemp -d)
cgroup=$blkio/cpwal_budget_$$
device=
cleanup() {
  mountpoint -q "$work/mnt" && umount "$work/mnt"
  [ -n "$device" ] && losetup -d "$device"
  [ -d "$cgroup" ] && rmdir "$cgroup"
  rm -rf "$work"
}
trap cleanup EXIT

truncate -s 3G "$work/disk.img"
device=$(losetup -f --show "$work/disk.img")
mkfs.ext4 -q "$device"
mkdir "$work/mnt"
mount "$device" "$work/mnt"
majmin=$(lsblk -no MAJ:MIN "$device" | tr -d ' ')
mkdir "$cgroup"
echo "$majmin $iops" >"$cgroup/blkio.throttle.write_iops_device"

echo "budget_disk: ext4 on $device, writes throttled to $iops per second"
# The subshell joins the throttled cgroup; the bench's temporary
# directories go to the throttled file system.
(
  echo $BASHPID >"$cgroup/tasks"
  TMPDIR="$work/mnt" CPWAL_BENCH_LONG_RUNS="$seconds" cargo bench --bench concurrent
)
