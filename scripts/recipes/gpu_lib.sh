# Shared by the GPU scripts, sourced right after they set ROOT: the repository root as working folder and
# import path, the interpreter $PY ($PYTHON), unbuffered output, results in $RES ($RESULTS, default
# $OUT/results); time-boxed steps whose logs go to $RES, with $RES packed into $OUTDIR/results.tgz after every
# step, so a run cut short still returns what it measured.
cd "$ROOT" || exit 1
PY=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TQDM_MININTERVAL=${TQDM_MININTERVAL:-30}   # a readable log, not a progress bar per 0.1 s
OUTDIR=${OUT:-/tmp/geodrain-gpu-out}
RES=${RESULTS:-$OUTDIR/results}
mkdir -p "$RES"

pack() {
    tar czf "$OUTDIR/results.tgz.tmp" -C "$(dirname "$RES")" "$(basename "$RES")" \
        && mv "$OUTDIR/results.tgz.tmp" "$OUTDIR/results.tgz"
}
step() {  # step NAME SECONDS COMMAND... -> the command's exit status
    local name=$1 limit=$2; shift 2
    local t0; t0=$(date +%s)
    echo "== $name (limit ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" > "$RES/$name.log" 2>&1
    local rc=$?
    echo "   $name: exit $rc after $(( $(date +%s) - t0 ))s" | tee -a "$RES/steps.txt"
    tail -n 20 "$RES/$name.log"
    pack
    return $rc
}
