# shellcheck shell=bash
# What the CI stages share; they source it.

timed() {  # STAGE NAME COMMAND...: run COMMAND, saying when it starts and how long it took
    local stage=$1 name=$2 t=$SECONDS
    shift 2
    echo "== $stage: $name"
    "$@"
    echo "== $stage: $name took $((SECONDS - t)) s"
}
