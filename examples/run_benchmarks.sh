#!/usr/bin/env bash
# The benchmark matrix behind BENCHMARKS.md: every task variant on every dataset, our preset beside the
# peers' samplers (same operator, same images, same MMSE-twin network) and the prior-free baselines.
#
#   examples/run_benchmarks.sh OUT [DATA]                     # all variants, all datasets
#   VARIANTS="sr4 denoise25" SETS="Set5" examples/run_benchmarks.sh OUT
#   python examples/collect_tables.py OUT > tables.md
#
# Each run writes OUT/VARIANT-SET/{results.csv,summary.md,grid.png,psnr_vs_nfe.png} and is resumable:
# rows already in results.csv are skipped, so a stopped run continues where it stopped and a new method
# only adds its own rows. One CPU thread per run (OMP_NUM_THREADS=1); start two queues with disjoint
# VARIANTS to use two cores.
set -euo pipefail
OUT=${1:?usage: run_benchmarks.sh OUT [DATA]}
DATA=${2:-../shared/datasets}
VARIANTS=${VARIANTS:-"sr4 sr8 colorize denoise25 denoise50 inpaint inpaint-box deblur-gauss"}
SETS=${SETS:-"Set5 Set14 McMaster CBSD68"}
PRECISION=${PRECISION:-fp32}          # the tables are fp32; PRECISION=auto runs bf16 where the CPU has it
PEERS="dpir-hqs,ddrm,diffpir"          # each with --prior mmse-color, the MMSE twin of the noising process
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for V in $VARIANTS; do
  for S in $SETS; do
    TASK=$V; SIGMA=0; EXTRA=()
    case $V in
      sr4|sr8)      M="preset,rgm-drs,$PEERS,bicubic,pinv" ;;   # preset: mmse-sr; rgm-drs: mmse-color (Table 4)
      colorize)     M="preset,rgm-drs,$PEERS,pinv" ;;
      denoise25)    TASK=denoise; SIGMA=0.09803921568627451; M="preset,rgm-drs-sr,$PEERS,bm3d" ;;  # + the SR prior (Table 4)
      denoise50)    TASK=denoise; SIGMA=0.19607843137254902; M="preset,$PEERS,bm3d" ;;
      inpaint)      M="preset,$PEERS,pinv" ;;                              # 50 % of pixels missing
      inpaint-box)  TASK=inpaint; EXTRA=(--set box=center); M="preset,$PEERS,pinv" ;;  # a centre half-size box
      deblur-gauss) M="preset,$PEERS,pinv" ;;
      *) echo "unknown variant $V" >&2; exit 2 ;;
    esac
    # TV-regularised DRS (2-3 s per image, no prior) on the two small sets only
    if [ "$S" = Set5 ] || [ "$S" = Set14 ]; then case $V in denoise*) ;; *) M="$M,tv" ;; esac; fi
    echo "== $V $S: $M"
    pnp-rgm benchmark --task "$TASK" --sigma "$SIGMA" "${EXTRA[@]}" --data "$DATA/$S" --out "$OUT/$V-$S" \
      --methods "$M" --prior mmse-color --precision "$PRECISION"
  done
done
