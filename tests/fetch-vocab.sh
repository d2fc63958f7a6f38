#!/usr/bin/env bash
# Fetches llama.cpp's tokenizer test vectors (models/ggml-vocab-*.gguf with their .inp/.out files)
# from the llama-cpp-python sdist on PyPI into ${ATTEND_CACHE:-$HOME/.cache/attend}/vocab/.
# Reused when present. Only the sdist is downloaded (no build): pip's metadata step pulls the
# small build backend as a wheel.
set -euo pipefail

VERSION=0.3.36
CACHE="${ATTEND_CACHE:-$HOME/.cache/attend}"
DEST="$CACHE/vocab"
PY="${PYTHON:-python3}"

if [ -f "$DEST/.complete-$VERSION" ]; then
    echo "fetch-vocab: $DEST already present" >&2
    exit 0
fi
mkdir -p "$DEST"
WORK="$(mktemp -d "$CACHE/.fetch-vocab.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "fetch-vocab: downloading the llama-cpp-python $VERSION sdist" >&2
"$PY" -m pip download --quiet --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$VERSION" -d "$WORK" >&2
SDIST="$(ls "$WORK"/llama_cpp_python-*.tar.gz | head -n1)"
"$PY" - "$SDIST" "$DEST" <<'PYEOF'
import os, sys, tarfile
sdist, dest = sys.argv[1], sys.argv[2]
n = 0
with tarfile.open(sdist) as t:
    for m in t.getmembers():
        name = os.path.basename(m.name)
        if m.isfile() and "/vendor/llama.cpp/models/" in m.name and name.startswith("ggml-vocab-"):
            with t.extractfile(m) as src, open(os.path.join(dest, name + ".part"), "wb") as out:
                out.write(src.read())
            os.replace(os.path.join(dest, name + ".part"), os.path.join(dest, name))
            n += 1
print(f"fetch-vocab: {n} files in {dest}", file=sys.stderr)
PYEOF
touch "$DEST/.complete-$VERSION"
