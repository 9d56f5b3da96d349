# Sourced by scripts/serve and scripts/test: make (once) and activate the project's venv.
# VENV_DIR overrides where it lives; the default is .venv in the project root. (Not a PIXDROP_*
# name: the server refuses PIXDROP_* variables that are not its settings.)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV_DIR:-$root/.venv}"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "pixdrop needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
stamp="$venv/.pixdrop-installed-$1"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
# Reinstall when pyproject.toml changed since the last install.
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  if [ "$1" = serve ]; then spec="$root"; else spec="$root[$1]"; fi
  "$venv/bin/python" -m pip install --quiet -e "$spec"
  touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
cd "$root"
