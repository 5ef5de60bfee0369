# Sourced by the GPU scripts: makes sure the CUDA libraries scratchgpt loads
# at run time (libnvrtc.so.13, libcublas.so.13; the driver's libcuda.so.1
# comes with the GPU) can be found. It looks where they usually are (the
# system's library path, /usr/local/cuda, the pip wheels `nvidia-cuda-nvrtc`
# and `nvidia-cublas` that a CUDA build of PyTorch also brings, and the
# target/nvrtc folder .ci/run fills) and adds what it finds to
# LD_LIBRARY_PATH. It installs nothing; when a library is missing it says
# how to get it. For CUDA 12 builds set CUDA_MAJOR=12 first.

CUDA_MAJOR="${CUDA_MAJOR:-13}"

cuda_lib_found() {
    ldconfig -p 2>/dev/null | grep -q "$1" && return 0
    local dir
    for dir in ${LD_LIBRARY_PATH:+${LD_LIBRARY_PATH//:/ }}; do
        [ -e "$dir/$1" ] && return 0
    done
    return 1
}

cuda_add_lib_dir() {
    case ":${LD_LIBRARY_PATH:-}:" in
        *":$1:"*) ;;
        *) export LD_LIBRARY_PATH="$1${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
    esac
}

cuda_find_libs() {
    local lib dir candidates
    candidates="/usr/local/cuda/lib64 /usr/local/cuda-${CUDA_MAJOR}*/lib64 target/nvrtc/nvidia/cu${CUDA_MAJOR}/lib"
    if command -v python3 >/dev/null 2>&1; then
        candidates="$candidates $(python3 -c 'import site, sys; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null \
            | tr ' ' '\n' | sed "s|\$|/nvidia/cu${CUDA_MAJOR}/lib|" | tr '\n' ' ')"
    fi
    for lib in "libnvrtc.so.${CUDA_MAJOR}" "libcublas.so.${CUDA_MAJOR}"; do
        cuda_lib_found "$lib" && continue
        for dir in $candidates; do
            if [ -e "$dir/$lib" ]; then
                cuda_add_lib_dir "$dir"
                break
            fi
        done
        cuda_lib_found "$lib" || echo "warning: $lib not found; install the CUDA ${CUDA_MAJOR} toolkit or" \
            "\`pip install nvidia-cuda-nvrtc nvidia-cublas\` (CUDA 12: the -cu12 packages)" >&2
    done
}

cuda_find_libs
