#!/usr/bin/env bash
# Overlapping group-commit syncs on a disk with an operations budget: an
# ext4 file system on a loop device whose writes the kernel throttles to
# CPWAL_BUDGET_IOPS per second (default 250) for this script's processes,
# as a cloud volume at its IOPS limit is. It runs the concurrent bench's
# long runs there (`CPWAL_BENCH_LONG_RUNS` seconds each, default 4): one
# sync in flight, the default, a second sync at once; 4 and 16 threads;
# each sync as the disk makes it, then 4 ms late.
#
# What is throttled: the writes this script's processes submit to the loop
# device (the bench's own appends and syncs); the file system's journal
# thread and the kernel's background writeback are not charged to the
# cgroup under v1.
#
# Needs root, a free loop device, mkfs.ext4 and the cgroup-v1 blkio
# controller (/sys/fs/cgroup/blkio). On cgroup v2, the same limit is
# "MAJ:MIN wiops=N" in the io.max of a cgroup with the io controller; this
# script does not set that up (the machine it was written on has v1 only).
# Run as root from a root-owned checkout (or set CARGO_TARGET_DIR), or the
# build leaves root-owned files in the user's target directory. The 3 GiB
# disk image is sparse and lives under target/, not in a RAM-backed /tmp.
#
# Usage: benches/budget_disk.sh   (from the repository; 4 minutes, plus
# the bench's build if it is not built yet)
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

mkdir -p target
work=$(mktemp -d -p "$PWD/target" budget-disk.XXXXXX)
cgroup=$blkio/cpwal_budget_$$
device=
bench=
# Undoes everything, whatever failed or stopped the script: stops the
# bench, moves whatever is left in the cgroup out of it, unmounts (lazily
# if still busy), detaches the loop device, removes the image.
cleanup() {
  set +e
  [ -n "$bench" ] && kill -- "-$bench" 2>/dev/null && wait "$bench" 2>/dev/null
  if [ -d "$cgroup" ]; then
    while read -r task; do { echo "$task" >"$blkio/tasks"; } 2>/dev/null; done <"$cgroup/tasks"
    rmdir "$cgroup"
  fi
  if mountpoint -q "$work/mnt"; then
    umount "$work/mnt" 2>/dev/null || umount -l "$work/mnt"
  fi
  [ -n "$device" ] && losetup -d "$device"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

truncate -s 3G "$work/disk.img"
device=$(losetup -f --show "$work/disk.img")
mkfs.ext4 -q "$device"
mkdir "$work/mnt"
mount "$device" "$work/mnt"
majmin=$(lsblk -no MAJ:MIN "$device" | tr -d ' ')
mkdir "$cgroup"
echo "$majmin $iops" >"$cgroup/blkio.throttle.write_iops_device"

echo "budget_disk: ext4 on $device, writes throttled to $iops per second"
# The bench runs in its own process group (so that cleanup can stop all of
# it), in the throttled cgroup, with its temporary directories on the
# throttled file system.
set -m
(
  echo $BASHPID >"$cgroup/tasks"
  TMPDIR="$work/mnt" CPWAL_BENCH_LONG_RUNS="$seconds" exec cargo bench --bench concurrent
) &
bench=$!
set +m
wait "$bench"
bench=
