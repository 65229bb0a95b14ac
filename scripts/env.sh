# Environment shared by the demo, the tests and DVC stage commands (sourced, not run).
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$_root/.venv/bin:$PATH"
export PREFECT_HOME="${PREFECT_HOME:-$_root/.prefect}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
# The ephemeral API of `sftops run` starts in ~10 s; 20 s (Prefect's default) is too tight on a
# busy 2-core machine.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="${PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS:-120}"
export PREFECT_LOGGING_EXTRA_LOGGERS=sftops
export DVC_NO_ANALYTICS=1
export HF_HUB_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
unset _root
