#!/usr/bin/env bash
# Times `liverseg finetune` on one corrected 512x512x100 case (a phantom whose
# prediction.nii.gz misses the liver on 10 slices: the person repainted them) for
# untrained width-32 and width-64 UNets with the default preprocessing (1.5 mm, 256x256)
# and the default settings (5 epochs, 2 neighbours, 0.5 replay).
#   benchmarks/finetune_timing.sh [BUILD_DIR] [THREADS]
set -euo pipefail
build="${1:-build}"
threads="${2:-0}"
liverseg="$build/app/liverseg"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$liverseg" phantom --out "$work/store/case" --seed 5 --size 512,512,100 --spacing 0.8,0.8,2.5 >/dev/null
# The network's mask before correction: the liver without slices 45-54.
python3 - "$work/store/case" <<'PYTHON'
import gzip, struct, sys
folder = sys.argv[1]
data = bytearray(gzip.open(folder + "/liver.nii.gz").read())
nx, ny, nz = struct.unpack("<3h", data[42:48])
offset = int(struct.unpack("<f", data[108:112])[0])
assert struct.unpack("<h", data[70:72])[0] == 2  # uint8
for z in range(45, 55):
    start = offset + z * nx * ny
    data[start:start + nx * ny] = bytes(nx * ny)
with gzip.open(folder + "/prediction.nii.gz", "wb") as out:
    out.write(bytes(data))
PYTHON
for width in 32 64; do
  "$liverseg" model init --arch unet --width "$width" --seed 1 --out "$work/unet$width.pt" >/dev/null
  start=$(date +%s.%N)
  "$liverseg" finetune --weights "$work/unet$width.pt" --data "$work/store" --out "$work/unet$width-tuned.pt" \
    --threads "$threads" 2>&1 | sed 's/^/  /'
  end=$(date +%s.%N)
  echo "width $width: $(echo "$end - $start" | bc) s wall"
done
