#!/usr/bin/env bash
# The experiments of "priors from corrupted data only" (BENCHMARKS.md), end to end on CPU:
#   examples/run_rsd_experiments.sh OUT [DATA]        # DATA = ../shared/datasets (CBSD432, CBSD68)
# About 3.5 h on two cores: the trainings run two at a time, one thread each. Resumable: a step
# whose output exists is skipped (delete it to redo).
set -euo pipefail
OUT=${1:?usage: $0 OUT [DATA]}
DATA=${2:-../shared/datasets}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$OUT"

train() {  # train NAME ARGS...: pnp-rgm train into OUT/NAME unless its checkpoint exists
  local name=$1; shift
  [ -f "$OUT/$name/checkpoint/model.safetensors" ] || pnp-rgm train "$@" --out "$OUT/$name" --quiet
}

# 1. linear-Gaussian check of the theory (~10 min)
[ -f "$OUT/linear/linear_gaussian.json" ] || python examples/rsd_linear_gaussian.py --out "$OUT/linear" &

# teachers from corrupted CBSD432 (noise sigma_n = 0.2; 60 % missing pixels) and the clean-data twin
train teacher ambient-noise-cpu --data "$DATA/CBSD432" --steps 3000 --corrupt &
train clean mmse-cpu --data "$DATA/CBSD432" --steps 3000 --set objective.sigma_max=1.0 --set train.name=clean-twin-3k
wait
train teacher-mask ambient-mask-cpu --data "$DATA/CBSD432" --steps 3000 --corrupt &
# one-step students, data free
train student rsd-cpu --set "objective.teacher=$OUT/teacher/checkpoint" --steps 1500
wait
train student-floor-sn rsd-cpu --set "objective.teacher=$OUT/teacher/checkpoint" --set objective.sigma_floor=0.2 --steps 1500 &
train student-mask rsd-cpu --set "objective.teacher=$OUT/teacher-mask/checkpoint" --steps 1500
wait

# 2. teacher vs student on 64x64 patches: LP-SWD to clean CBSD68 patches, and sample grids
[ -f "$OUT/patches-noise/patches.json" ] || python examples/rsd_patches.py --teacher "$OUT/teacher/checkpoint" \
  --student "floor 1.2 σ_n=$OUT/student/checkpoint" --student "floor σ_n=$OUT/student-floor-sn/checkpoint" \
  --reference "$DATA/CBSD68" --train-data "$DATA/CBSD432" --ode-steps 4,18 --out "$OUT/patches-noise" &
[ -f "$OUT/patches-mask/patches.json" ] || python examples/rsd_patches.py --teacher "$OUT/teacher-mask/checkpoint" \
  --student "mask=$OUT/student-mask/checkpoint" \
  --reference "$DATA/CBSD68" --train-data "$DATA/CBSD432" --ode-steps 4,18 --out "$OUT/patches-mask"
[ -f "$OUT/patches-mask-fresh/patches.json" ] || python examples/rsd_patches.py --teacher "$OUT/teacher-mask/checkpoint" \
  --reference "$DATA/CBSD68" --train-data "$DATA/CBSD432" --ode-steps 4,18 --fresh-masks --out "$OUT/patches-mask-fresh"
wait

# 3. the noisy-data teacher as a restoration prior on CBSD68, against the clean-data twin
python examples/ambient_prior_eval.py --data "$DATA/CBSD68" --out "$OUT/prior-eval" \
  --prior "noisy data=$OUT/teacher/checkpoint" --prior "clean data=$OUT/clean/checkpoint"
# how AMBIENT_FLOOR was chosen (training images, not a test set)
python examples/denoise_eval.py --data "$DATA/CBSD432" --limit 24 --crop 128 --sigmas 0.05,0.1,0.3 \
  --floors 1,1.2,1.41,1.7,2 "$OUT/teacher/checkpoint" | tee "$OUT/floor.md"

# 4. a teacher from blurred data only (ambient-fourier) against one that ignores the blur, and the clean twin
[ -d "$OUT/blur15" ] || python examples/corrupt_folder.py --data "$DATA/CBSD432" --out "$OUT/blur15" \
  --operator deblur-gauss --width 1.5 --size 9 --sigma-n 0.02
train teacher-blur ambient-fourier-cpu --data "$OUT/blur15" --steps 3000 --set train.name=ambient-fourier-3k &
train naive-blur ambient-noise-cpu --data "$OUT/blur15" --steps 3000 --set corruption.sigma_n=0.02 --set train.name=naive-blurred-3k
wait
python examples/denoise_eval.py --data "$DATA/CBSD68" --sigmas 0.05,0.1,0.2 "$OUT/teacher-blur/checkpoint" \
  "$OUT/naive-blur/checkpoint" "$OUT/clean/checkpoint" | tee "$OUT/blur-denoise.md"
python examples/ambient_prior_eval.py --data "$DATA/CBSD68" --out "$OUT/blur-eval" --tasks deblur-gauss:0.02 \
  --op width=1.5 --op size=9 --prior "blurred data=$OUT/teacher-blur/checkpoint" \
  --prior "blurred data, blur ignored=$OUT/naive-blur/checkpoint" --prior "clean data=$OUT/clean/checkpoint"
# block-averaged data: the same objective with corruption sr2 (images at half size)
[ -d "$OUT/sr2data" ] || python examples/corrupt_folder.py --data "$DATA/CBSD432" --out "$OUT/sr2data" --operator sr2 --sigma-n 0.02
train teacher-sr2 ambient-fourier-cpu --data "$OUT/sr2data" --steps 2000 --set corruption.operator=sr2 \
  --set corruption.width=0 --set corruption.size=0 --set train.name=ambient-sr2-2k
python examples/denoise_eval.py --data "$DATA/CBSD68" --sigmas 0.05,0.1,0.2 "$OUT/teacher-sr2/checkpoint" "$OUT/clean/checkpoint"
python examples/ambient_prior_eval.py --data "$DATA/CBSD68" --out "$OUT/sr2-eval" --tasks sr2:0.02 --limit 24 \
  --prior "block-averaged data=$OUT/teacher-sr2/checkpoint" --prior "clean data=$OUT/clean/checkpoint"
