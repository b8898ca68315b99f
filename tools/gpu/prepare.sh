#!/usr/bin/env bash
# Build the folder .gpu/ that travels to the GPU machine (no network there, CPython 3.12):
#   .gpu/ours/   our five wheels (uv build --all-packages --wheel)
#   .gpu/whl/    dependency wheels for CPython 3.12 / manylinux x86-64 that the GPU image lacks
#                (common: kornia & co; peer: lightly-train 0.18.0 and its missing deps)
#   .gpu/data/c10.tar.gz  a gzipped tar of CIFAR-10 class folders (a subset: the device
#                derives every benchmark image set from it, see gpu_bench.py prep)
# Run from anywhere on the development machine (network to PyPI, any Python >= 3.9 with pip,
# and uv). Re-running reuses downloaded wheels; --clean starts over. Prints sizes by part.
# Env: CIFAR_SRC (default /work/shared/data/cifar10-train), PER_CLASS (images per class
# carried, default 5000: all 50,000), CARRY_LIMIT_MIB (default 64).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
G=.gpu
SRC=${CIFAR_SRC:-/work/shared/data/cifar10-train}
PER_CLASS=${PER_CLASS:-5000}
LIMIT_MIB=${CARRY_LIMIT_MIB:-64}
t0=$(date +%s)
say() { echo "[prepare $(( $(date +%s) - t0 ))s] $*"; }

if [ "${1:-}" = "--clean" ]; then rm -rf "$G"; fi
if ! git check-ignore -q "$G/" 2>/dev/null; then
  say "WARNING: $G/ is not ignored by git here: it would be committed by 'git add -A' and it"
  say "         travels with the tree anyway. Add '.gpu/' to .gitignore (or .git/info/exclude)."
fi
mkdir -p "$G/whl" "$G/data"

# 1. Our wheels: always rebuilt from the working tree.
rm -rf "$G/ours"
say "building our wheels"
uv build --all-packages --wheel -q -o "$G/ours"
rm -f "$G/ours/.gitignore"
ls "$G/ours"

# 2. Dependency wheels for the GPU machine's CPython 3.12. Versions: ours as in uv.lock, the
# peer's as `uv pip compile lightly-train==0.18.0 --python-version 3.12` resolved them. The
# GPU image already holds torch, torchvision, numpy, pillow, pytorch-lightning, lightning-
# utilities, transformers, tensorboard, torchmetrics, matplotlib, opencv-python-headless,
# scipy, pyyaml, tqdm, rich, psutil, pyarrow, fsspec, packaging (see
# /work/.library/device/KINDS.md), so those are not carried.
COMMON=(kornia==0.9.0 kornia-rs==0.2.0 lightly==1.6.0 webdataset==1.0.2 braceexpand==0.1.7
        lightning-fabric==2.6.6 hydra-core==1.3.8 omegaconf==2.3.1 typing-extensions==4.16.0)
PEER=(lightly-train==0.18.0 albumentations==2.0.8 albucore==0.0.24 pydantic==2.14.4
      pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
      eval-type-backport==0.4.0 pycocotools==2.0.11 stringzilla==5.3.2 simsimd==6.5.16)
say "downloading ${#COMMON[@]} + ${#PEER[@]} wheels for cp312"
python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform any \
  -d "$G/whl" "${COMMON[@]}" "${PEER[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
# antlr4-python3-runtime 4.9.3 (omegaconf/hydra) exists only as an sdist: build a pure wheel.
if ! ls "$G"/whl/antlr4_python3_runtime-4.9.3-*.whl >/dev/null 2>&1; then
  say "building antlr4-python3-runtime 4.9.3"
  python3 -m pip wheel -q --disable-pip-version-check --no-deps --no-binary=:all: \
    -w "$G/whl" antlr4-python3-runtime==4.9.3 2> >(grep -v "is ignored: it is neither" >&2)
fi
# One version of each: a stale wheel from an earlier run would break the install there.
python3 - "$G/whl" <<'PY'
import collections, pathlib, sys
seen = collections.defaultdict(list)
for w in pathlib.Path(sys.argv[1]).glob("*.whl"):
    seen[w.name.split("-")[0].lower()].append(w.name)
dups = {k: v for k, v in seen.items() if len(v) > 1}
if dups:
    sys.exit(f"several versions in .gpu/whl: {dups}; run tools/gpu/prepare.sh --clean")
print(f"{len(seen)} dependency wheels")
PY

# 3. Data: PER_CLASS images of each CIFAR-10 class (names sorted), gzipped (a plain tar of
# 1 kB JPEGs is two thirds headers and padding). gpu_bench.py prep makes the 224-px set and
# the 50,000-image 32-px set from them (re-encoded, every second copy mirrored).
say "packing $PER_CLASS images per class from $SRC"
list=$(mktemp)
for d in "$SRC"/*/; do
  c=$(basename "$d")
  (cd "$SRC" && find "$c" -maxdepth 1 -type f -iname '*.jpg' | LC_ALL=C sort | sed -n "1,${PER_CLASS}p") >>"$list"
done
tar -cf - -C "$SRC" -T "$list" | gzip -6 >"$G/data/c10.tar.gz.tmp"
mv "$G/data/c10.tar.gz.tmp" "$G/data/c10.tar.gz"
rm -f "$G/data/c10.tar"   # an older plain tar, if any
echo "$(wc -l <"$list") images in $G/data/c10.tar.gz"
rm -f "$list"

# 4. Sizes: everything under .gpu travels (carry [".gpu"]) and counts towards 64 MiB together
# with the tracked and untracked files of the tree.
say "sizes (bytes):"
for p in "$G/ours" "$G/whl" "$G/data"; do printf '  %-12s %10d\n' "$p" "$(du -sb "$p" | cut -f1)"; done
du -b "$G"/whl/*.whl | sort -n | tail -6 | sed 's/^/    largest: /'
total=$(du -sb "$G" | cut -f1)
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | grep -zv "^$G/" | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
printf '  %-12s %10d (%.1f MiB)\n' "$G total" "$total" "$(echo "$total / 1048576" | bc -l)"
printf '  %-12s %10d (%.1f MiB) tracked + untracked files outside %s\n' "tree" "$tree" "$(echo "$tree / 1048576" | bc -l)" "$G"
if [ $(( total + tree )) -gt $(( LIMIT_MIB * 1048576 )) ]; then
  say "ERROR: $G plus the tree exceed ${LIMIT_MIB} MiB: lower PER_CLASS"; exit 1
fi
say "done"
