#!/bin/bash
# Pastes the README's five-minute tour into a fresh interactive bash, the
# way a reader does, twice in a row, and checks what the terminal shows.
# Each fenced block of the tour is pasted whole into a tmux pane: ```sh
# blocks as they are, transcript blocks as their "$ " lines. Needs tmux,
# redis-server and redis-cli; uses the tour's own port 6391 and
# /tmp/ops.bootstrap, so nothing else may be using them.
#   bash mk/tour-check.sh [BINDIR]      (make tour-check; TOUR_SHOW=1 prints
#                                        what the terminal showed)
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "${1:-$src/bin}" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/opstream-tour.XXXXXX")
status=0
session="opstream-tour-$$"

cleanup() {
    tmux kill-session -t "$session" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

for tool in tmux redis-server redis-cli; do
    command -v "$tool" >/dev/null || { echo "tour-check: $tool is needed" >&2; exit 2; }
done

# The tour's blocks, one file each, in order.
awk -v dir="$work" '
    /^## A five-minute tour/ { in_tour = 1; next }
    in_tour && /^## / { exit }
    !in_tour { next }
    /^```/ {
        if (!in_block) { in_block = 1; sh = ($0 ~ /^```sh/); n++; file = sprintf("%s/block%02d", dir, n); next }
        in_block = 0; next
    }
    in_block && sh { print > file; next }
    in_block && /^\$ / { print substr($0, 3) > file }
' "$src/README.md"
ls "$work"/block* >/dev/null 2>&1 || { echo "tour-check: no tour blocks found" >&2; exit 2; }

# Pastes file into the pane and waits for the prompt-side marker it echoes.
paste_block() {
    local file=$1 marker=$2 i
    cat "$file" >"$work/paste"
    printf 'echo %s\n' "$marker" >>"$work/paste"
    tmux load-buffer -b tour "$work/paste"
    tmux paste-buffer -b tour -t "$session"
    for i in $(seq 1 300); do
        tmux capture-pane -p -S - -t "$session" | grep -qx "$marker" && return 0
        sleep 0.1
    done
    echo "tour-check: block $(basename "$file") did not finish within 30 s" >&2
    return 1
}

expect() {
    if ! grep -qF -- "$2" "$1"; then
        echo "tour-check: run $run: the terminal does not show: $2" >&2
        status=1
    fi
}

refuse() {
    if grep -qF -- "$2" "$1"; then
        echo "tour-check: run $run: the terminal shows: $(grep -F -- "$2" "$1" | head -n 1)" >&2
        status=1
    fi
}

for run in 1 2; do
    rm -rf "$work/tree" && mkdir -p "$work/tree"
    ln -s "$src/examples" "$work/tree/examples"
    ln -s "$src/config" "$work/tree/config"
    tmux new-session -d -s "$session" -x 200 -y 50 -c "$work/tree" \
        "env PATH=$bin:$PATH PS1='$ ' bash --norc --noprofile -i"
    tmux set-option -t "$session" history-limit 10000 >/dev/null
    n=0
    for block in "$work"/block*; do
        n=$((n + 1))
        paste_block "$block" "__tour_block_${n}_done__" || status=1
        sleep 2 # a reader's pace: the counter gets its moment
    done
    screen="$work/screen.$run"
    tmux capture-pane -p -S - -t "$session" >"$screen"
    tmux kill-session -t "$session"
    expect "$screen" "read 4, delivered 4, rejected 0, failed 0"
    expect "$screen" "read 14, delivered 7, rejected 7, failed 0"
    expect "$screen" "TG                 4        30         0         0         0         2         4"
    expect "$screen" "SL                 5        18         0         9         2        17         7"
    expect "$screen" "CRITICAL LIBERTERRA-II PH  PH: 250 victims rescued in one SCAM_CENTRE raid"
    refuse "$screen" "%3|"
    refuse "$screen" "No such file"
    refuse "$screen" "not found"
    refuse "$screen" "Connection refused"
    refuse "$screen" "events/s"
    [ -e /tmp/ops.bootstrap ] && { echo "tour-check: run $run: /tmp/ops.bootstrap left behind" >&2; status=1; }
    [ "${TOUR_SHOW:-0}" = 1 ] && cat "$screen"
    if [ "$status" != 0 ]; then
        echo "--- run $run: the terminal" >&2
        cat "$screen" >&2
        break
    fi
    echo "tour-check: run $run: ok ($(ls "$work"/block* | wc -l) blocks pasted)"
done
exit "$status"
