#!/usr/bin/env bash
# Builds llama-cpp-python 0.3.36 with llama.cpp's Vulkan backend into $ATTEND_CACHE/perf-venv-vulkan
# (runs on lavapipe, the same software Vulkan adapter attend uses natively). Idempotent: returns at
# once when that venv already imports llama_cpp with Vulkan support. Follows ../shared/ENVIRONMENT.md:
#  - apt: glslc libvulkan-dev cmake spirv-headers (mesa-vulkan-drivers for lavapipe);
#  - Debian 12's Vulkan headers (1.3.239) lack VK_EXT_layer_settings: the sdist's ggml-vulkan.cpp
#    gets a `#if defined(VK_EXT_layer_settings)` guard with an `#else` that builds the instance
#    without the (validation-only) layer-settings chain;
#  - `pip install --no-build-isolation` with the venv's bin on PATH (vulkan-shaders-gen needs ninja);
#  - no -march=native (SIGILL on these VMs): the same AVX2/FMA/F16C flags as the CPU build.
# Run with GGML_VK_VISIBLE_DEVICES=0, or ggml-vulkan ignores the CPU-type lavapipe device.
# Takes ~15 min on an idle 2-core machine, up to ~80 min on a busy one.
set -euo pipefail
CACHE="${ATTEND_CACHE:-$HOME/.cache/attend}"
VENV="$CACHE/perf-venv-vulkan"
VERSION=0.3.36
SRC="$CACHE/src"

check() {
    [ -x "$VENV/bin/python" ] && GGML_VK_VISIBLE_DEVICES=0 "$VENV/bin/python" - <<'PY' 2>/dev/null
import llama_cpp, sys
sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else 1)
PY
}
if check; then echo "llama.cpp Vulkan venv ready: $VENV"; exit 0; fi

missing=()
for p in glslc libvulkan-dev cmake spirv-headers mesa-vulkan-drivers; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; }
fi

mkdir -p "$SRC"
tarball="$SRC/llama_cpp_python-$VERSION.tar.gz"
if [ ! -f "$tarball" ]; then
    python3 -m pip download --no-deps --no-binary :all: -d "$SRC" "llama-cpp-python==$VERSION"
fi
work="$SRC/llama_cpp_python-$VERSION-vulkan"
rm -rf "$work"
mkdir -p "$work"
tar xzf "$tarball" -C "$work" --strip-components=1

python3 - "$work/vendor/llama.cpp/ggml/src/ggml-vulkan/ggml-vulkan.cpp" <<'PY'
import sys
path = sys.argv[1]
src = open(path).read()
start = src.index("    VkBool32 enable_best_practice = layer_settings;")
end_marker = "&layer_setting_info);\n"
end = src.index(end_marker, start) + len(end_marker)
block = src[start:end]
guarded = ("#if defined(VK_EXT_layer_settings)\n" + block +
           "#else\n"
           "    vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, layers, extensions);\n"
           "#endif\n")
open(path, "w").write(src[:start] + guarded + src[end:])
print("patched", path)
PY

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "scikit-build-core[pyproject]>=0.9.2" ninja numpy typing-extensions diskcache jinja2
export PATH="$VENV/bin:$PATH"
export CMAKE_ARGS="-DGGML_VULKAN=on -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
nice -n 19 "$VENV/bin/pip" install -v --no-cache-dir --no-build-isolation --force-reinstall --no-deps "$work"
check || { echo "llama_cpp built but reports no GPU offload" >&2; exit 1; }
echo "llama.cpp Vulkan venv ready: $VENV"
