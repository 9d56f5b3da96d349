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
# The venv as the messages name it: .venv unless VENV_DIR moved it.
if [ "$venv" = "$root/.venv" ]; then shown=.venv; else shown="$venv"; fi
# Install on the first run, and again when pyproject.toml changed since the last install. This
# takes 15 s or more; say so on stderr (stdout is the program's). pip -qq prints errors only.
if [ ! -x "$venv/bin/python" ] || [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  if [ -f "$stamp" ] && [ -x "$venv/bin/python" ]; then
    echo "pixdrop: pyproject.toml changed: updating the dependencies in $shown…" >&2
  else
    echo "pixdrop: installing dependencies into $shown (first run only)…" >&2
  fi
  started=$SECONDS
  if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
  fi
  if [ "$1" = serve ]; then spec="$root"; else spec="$root[$1]"; fi
  if ! "$venv/bin/python" -m pip install -qq --upgrade pip ||
    ! "$venv/bin/python" -m pip install -qq -e "$spec"; then
    echo "pixdrop: installing into $shown failed (pip's message is above)" >&2
    exit 1
  fi
  touch "$stamp"
  echo "pixdrop: dependencies installed in $shown ($((SECONDS - started)) s)" >&2
fi
export PATH="$venv/bin:$PATH"
cd "$root"
