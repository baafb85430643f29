# Shared set-up for scripts/demo and scripts/test: a .venv reused while its inputs are unchanged.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
EXTRAS="$1"
STAMP="$VENV/.xmodal-$(echo "$EXTRAS" | tr ',[]' '___')"
HASH="$(cat pyproject.toml scripts/_env.sh | sha256sum | cut -c1-16)"

install_debs() {
    # Real sample data from Debian; skipped (the code says so) when not root or apt is unavailable.
    local missing=()
    for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing Debian packages: ${missing[*]}" >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null 2>&1 \
            || echo "warning: could not install ${missing[*]}; the parts that need them are skipped" >&2
    else
        echo "warning: not root, Debian packages ${missing[*]} not installed; the parts that need them are skipped" >&2
    fi
}

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$HASH" ]; then
    # -qq: pip's errors only (a failed install still stops here); a first run prints xmodal's own messages
    "$VENV/bin/python" -m pip install -qq --upgrade pip
    # The CPU wheel of torch first: a bare torch requirement would pull a multi-GB CUDA build.
    "$VENV/bin/python" -m pip install -qq "torch==2.13.0"
    "$VENV/bin/python" -m pip install -qq -e ".[$EXTRAS]"
    # RivaGAN's watermark ONNX files (xmodal.guards.provenance); its torch/opencv deps are not needed
    "$VENV/bin/python" -m pip install -qq --no-deps "invisible-watermark==0.2.0"
    case ",$EXTRAS," in
        *,all,* | *,audio,*)  # the audio models' weights (their stale pins are not needed: see pyproject's audio extra)
            "$VENV/bin/python" -m pip install -qq --no-deps "aisfx==0.1.2" "resemblyzer==0.1.4" ;;
    esac
    echo "$HASH" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
