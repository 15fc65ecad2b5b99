#!/usr/bin/env bash
# shellcheck disable=SC2317  # check functions are invoked indirectly, through `check`
# Release checks that need no GitHub and no Docker: workflow/dependabot schemas, zizmor,
# the cibuildwheel selection, sdist -> binary + pure wheels, their contents, metadata, lint, types.
#
#   bash .ci/release_checks.sh [PYTHON]        PYTHON defaults to `python`
#
# Environment:
#   DIST_DIR=dir           write the sdist and both wheels there (default: <tmp>/dist, kept)
#   PREBUILT_SDIST=file PREBUILT_BINARY_WHEEL=file PREBUILT_PURE_WHEEL=file
#                          check these artifacts instead of building them (.ci/run builds
#                          them once and every check reuses them); all three or none
#   RELEASE_TOOLS_VENV=dir reuse (or create) the tool venv there instead of a fresh one
#   KEEP_WORK=1            keep the temporary work directory (tool venv, unpacked sdist, logs)
#
# Every check runs even after an earlier one failed; the summary lists them all and the exit
# status is non-zero when any failed. Build artifacts are printed as `artifact: <path>`.
set -euo pipefail

PYTHON=${1:-python}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# The tools, pinned so that a new release of a linter cannot fail an unchanged tree.
# cibuildwheel decides the build identifiers: keep it in step with CIBUILDWHEEL_VERSION in
# .github/workflows/ci.yml, whose wheel jobs run it.
TOOLS_REQUIREMENTS=(
  "build==1.6.1"
  "check-jsonschema==0.39.0"
  "cibuildwheel==4.3.3"
  "cython-lint==0.22.0"
  "fastapi==0.165.0"  # typed optional dependency of dloader.integrations.fastapi, for mypy
  "graphql-core==3.3.2"  # typed optional dependency of dloader.demo, so mypy sees its types
  "mypy==2.4.1"
  "redis==8.1.0"  # typed optional dependency of dloader.redis, so mypy sees its types
  "opentelemetry-api==1.45.2"  # typed dependencies of dloader.opentelemetry (extra otel), so mypy sees
  "opentelemetry-instrumentation==0.66b2"  # BaseInstrumentor and the trace/metrics APIs
  "ruff==0.17.6"
  "strawberry-graphql==0.341.2"  # typed optional dependency of dloader.integrations.strawberry, for mypy
  "twine==7.0.0"
  "validate-pyproject[all]==0.27"
  "zizmor==1.32.0"
)
CONSTRAINTS="$ROOT/.ci/constraints-wheels.txt"
PLATFORMS=(linux macos windows)

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1
# A caller's cibuildwheel settings must not change the selection being checked.
while IFS='=' read -r name _; do unset "$name"; done < <(env | grep -E '^CIBW_' || true)

PREBUILT=0
if [ -n "${PREBUILT_SDIST:-}${PREBUILT_BINARY_WHEEL:-}${PREBUILT_PURE_WHEEL:-}" ]; then
  for artifact in "${PREBUILT_SDIST:-}" "${PREBUILT_BINARY_WHEEL:-}" "${PREBUILT_PURE_WHEEL:-}"; do
    if [ ! -f "$artifact" ]; then
      echo "PREBUILT_SDIST, PREBUILT_BINARY_WHEEL and PREBUILT_PURE_WHEEL must all name files (got '$artifact')" >&2
      exit 2
    fi
  done
  PREBUILT=1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dloader-release.XXXXXX")
DIST=${DIST_DIR:-$WORK/dist}
mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)
LOGS="$WORK/logs"
mkdir -p "$LOGS"
TOOLS=${RELEASE_TOOLS_VENV:-$WORK/tools}

cleanup() {
  if [ "${KEEP_WORK:-0}" = 1 ]; then return; fi
  # Keep the artifacts (DIST may live inside WORK) and the logs; drop the heavy parts.
  rm -rf "$WORK/tools" "$WORK/unpacked" "$WORK/build-"*
}
trap cleanup EXIT

START=$SECONDS
declare -a RESULTS=()
FAILED=0

section() { printf '\n=== %s\n' "$*"; }
pass() { RESULTS+=("PASS  $1"); echo "PASS: $1"; }
fail() { RESULTS+=("FAIL  $1"); FAILED=1; echo "FAIL: $1" >&2; }
skip() { RESULTS+=("SKIP  $1"); echo "SKIP: $1"; }

# check <name> <command...>: run a command, record pass/fail, never abort the script.
check() {
  local name=$1; shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}

# quiet <log> <command...>: run with output in a log, shown only on failure.
quiet() {
  local log=$1 status=0; shift
  "$@" >"$log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    echo "--- $log (last 60 lines)" >&2
    tail -n 60 "$log" >&2
  fi
  return "$status"
}

summary() {
  section "summary ($((SECONDS - START)) s)"
  printf '%s\n' "${RESULTS[@]}"
  if [ -n "${SDIST:-}" ] || [ -n "${BINARY_WHEEL:-}" ] || [ -n "${PURE_WHEEL:-}" ]; then
    echo
    for artifact in ${SDIST:-} ${BINARY_WHEEL:-} ${PURE_WHEEL:-}; do echo "artifact: $artifact"; done
  fi
  echo "logs: $LOGS"
  if [ "$FAILED" = 0 ]; then echo "release checks: all passed"; else echo "release checks: FAILED" >&2; fi
}

# ---------------------------------------------------------------- tools
section "tool venv ($PYTHON)"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "no python executable '$PYTHON'" >&2
  exit 2
fi
if [ ! -x "$TOOLS/bin/python" ]; then
  quiet "$LOGS/venv.log" "$PYTHON" -m venv "$TOOLS"
fi
if quiet "$LOGS/tools.log" "$TOOLS/bin/python" -m pip install --upgrade pip "${TOOLS_REQUIREMENTS[@]}"; then
  pass "install tools (${#TOOLS_REQUIREMENTS[@]} packages)"
else
  fail "install tools (${#TOOLS_REQUIREMENTS[@]} packages)"
  summary
  exit 1
fi
# cython-lint runs pycodestyle by name; the tools must come first on PATH.
export PATH="$TOOLS/bin:$PATH"
TPY="$TOOLS/bin/python"

# ---------------------------------------------------------------- workflows and dependabot
section "GitHub workflows and Dependabot"
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
shopt -u nullglob
if [ ${#workflows[@]} -eq 0 ]; then
  fail "workflows: none found in .github/workflows"
else
  check "workflows match the GitHub workflow schema (${#workflows[@]} files)" \
    check-jsonschema --builtin-schema vendor.github-workflows "${workflows[@]}"
fi
if [ -f .github/dependabot.yml ]; then
  check "dependabot.yml matches the Dependabot schema" \
    check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
else
  fail "dependabot.yml: missing"
fi
if [ ${#workflows[@]} -gt 0 ]; then
  # --offline: no GitHub API (no impostor-commit or known-vulnerable-action lookups).
  check "zizmor (workflows + dependabot): no finding of medium severity or above" \
    zizmor --offline --min-severity medium --no-progress .github
fi

# Each wheel runner narrows cibuildwheel's archs to its own; together they must cover what
# pyproject.toml declares, or a declared wheel would silently never be built.
check_runner_archs() {
  "$TPY" - <<'PY'
import sys
import tomllib
from pathlib import Path

from ruamel.yaml import YAML

declared = {
    platform: set(tomllib.loads(Path("pyproject.toml").read_text())["tool"]["cibuildwheel"][platform]["archs"])
    for platform in ("linux", "macos", "windows")
}
# Matrix entries with both `platform` and `archs` are cibuildwheel runners (see ci.yml).
built: dict[str, set[str]] = {platform: set() for platform in declared}
for path in sorted(Path(".github/workflows").glob("*.y*ml")):
    for job in (YAML(typ="safe").load(path.read_text()) or {}).get("jobs", {}).values():
        for entry in job.get("strategy", {}).get("matrix", {}).get("include", []):
            if isinstance(entry, dict) and "platform" in entry and "archs" in entry:
                built.setdefault(entry["platform"], set()).update(str(entry["archs"]).split(","))
ok = True
for platform in sorted(set(declared) | set(built)):
    if built.get(platform, set()) != declared.get(platform, set()):
        print(
            f"{platform}: pyproject.toml declares archs {sorted(declared.get(platform, ()))}, "
            f"the workflow runners build {sorted(built.get(platform, ()))}"
        )
        ok = False
sys.exit(0 if ok else 1)
PY
}
if [ ${#workflows[@]} -gt 0 ]; then
  check "cibuildwheel runners in the workflows build exactly the archs pyproject.toml declares" check_runner_archs
fi

# ---------------------------------------------------------------- pyproject, lint, types
section "pyproject, lint and types"
check "validate-pyproject pyproject.toml (incl. [tool.cibuildwheel])" validate-pyproject pyproject.toml

check_cython_pin() {
  "$TPY" - "$CONSTRAINTS" <<'PY'
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

pins = [
    Requirement(line.split("#")[0].strip())
    for line in Path(sys.argv[1]).read_text().splitlines()
    if line.split("#")[0].strip()
]
cython = [pin for pin in pins if pin.name.lower() == "cython"]
if len(cython) != 1 or len(cython[0].specifier) != 1 or next(iter(cython[0].specifier)).operator != "==":
    sys.exit(f"{sys.argv[1]} must pin Cython exactly once with ==, found {[str(p) for p in cython]}")
version = next(iter(cython[0].specifier)).version
requires = tomllib.loads(Path("pyproject.toml").read_text())["build-system"]["requires"]
bound = next(Requirement(r) for r in requires if Requirement(r).name.lower() == "cython")
if not bound.specifier.contains(version):
    sys.exit(f"the wheel pin Cython=={version} is outside build-system.requires {bound}")
print(f"Cython=={version} within {bound}")
PY
}
check "constraints pin Cython exactly, within build-system.requires" check_cython_pin

check "ruff check" ruff check --no-cache .
check "ruff format --check" ruff format --no-cache --check .
check "mypy --strict dloader tests/typing/typed_usage.py" \
  mypy --strict --no-incremental dloader tests/typing/typed_usage.py
if [ -f dloader/_loader_c.pyx ] && [ -f dloader/_loader_c.pxd ]; then
  check "cython-lint dloader/_loader_c.pyx dloader/_loader_c.pxd" \
    cython-lint dloader/_loader_c.pyx dloader/_loader_c.pxd
else
  fail "cython-lint: dloader/_loader_c.pyx or .pxd missing"
fi

# ---------------------------------------------------------------- sdist and wheels
SDIST=""
BINARY_WHEEL=""
PURE_WHEEL=""
if [ "$PREBUILT" = 1 ]; then
  section "sdist and both wheels, built once by the caller: checked, not rebuilt"
  SDIST=$(cd "$(dirname "$PREBUILT_SDIST")" && pwd)/$(basename "$PREBUILT_SDIST")
  pass "reuse the sdist: $(basename "$SDIST")"
else
  section "sdist, then both wheels from the sdist (into $DIST)"
  rm -f "$DIST"/dloader-*.tar.gz "$DIST"/dloader-*.whl
  if quiet "$LOGS/sdist.log" "$TPY" -m build --sdist --outdir "$DIST" .; then
    SDIST=$(ls "$DIST"/dloader-*.tar.gz)
    pass "build the sdist: $(basename "$SDIST")"
  else
    fail "build the sdist"
  fi
fi

check_sdist_contents() {
  local listing missing=0 required
  listing=$(tar -tzf "$SDIST" | sed 's|^[^/]*/||')
  for required in dloader/_loader_c.pyx dloader/_loader_c.pxd dloader/_loader_py.py dloader/py.typed \
      tests/conftest.py tests/test_freethreading.py tests/typing/typed_usage.py benchmarks/ examples/ \
      LICENSE README.md pyproject.toml setup.py .ci/constraints-wheels.txt; do
    if ! grep -qxF "$required" <<<"$listing"; then echo "sdist lacks $required"; missing=1; fi
  done
  if grep -E '\.(c|so|pyd|html)$' <<<"$listing"; then echo "sdist holds the generated files above"; missing=1; fi
  return "$missing"
}

# build_wheel_from_sdist <kind> <env assignments...>: unpack the sdist afresh and build one wheel.
build_wheel_from_sdist() {
  local kind=$1; shift
  local src="$WORK/unpacked/$kind" out="$WORK/build-$kind"
  rm -rf "$src" "$out" && mkdir -p "$src" "$out"
  tar -xzf "$SDIST" -C "$src" || return 1
  env PIP_CONSTRAINT="$CONSTRAINTS" PIP_BUILD_CONSTRAINT="$CONSTRAINTS" "$@" \
    "$TPY" -m build --wheel --outdir "$out" "$src"/dloader-*/ || return 1
  cp "$out"/dloader-*.whl "$DIST"/
}

check_binary_wheel() {
  local listing
  listing=$("$TPY" -m zipfile -l "$BINARY_WHEEL")
  case "$(basename "$BINARY_WHEEL")" in
    *-py3-none-any.whl) echo "the binary wheel is tagged pure: $BINARY_WHEEL"; return 1 ;;
  esac
  grep -qE 'dloader/_loader_c\.[^ ]*\.(so|pyd) ' <<<"$listing" || { echo "no compiled dloader/_loader_c module"; return 1; }
  grep -q 'dloader/_loader_py.py ' <<<"$listing" || { echo "no dloader/_loader_py.py"; return 1; }
  grep -q 'dloader/py.typed ' <<<"$listing" || { echo "no dloader/py.typed"; return 1; }
  if grep -qE 'dloader/_loader_c\.c ' <<<"$listing"; then echo "generated C in the wheel"; return 1; fi
}

# A Cython-compiled module names its Cython in its shared-types module (`_cython_3_3_1`):
# proof, read from the wheel itself, that the pin reached the isolated build.
check_cython_used() {
  local pinned
  pinned=$(grep -iE '^cython==' "$CONSTRAINTS" | head -n 1 | sed 's/^[^=]*==//; s/[[:space:]#].*//')
  "$TPY" - "$BINARY_WHEEL" "$pinned" <<'PY'
import re
import sys
import zipfile

wheel, pinned = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    modules = [name for name in archive.namelist() if re.fullmatch(r"dloader/_loader_c\.[^/]*\.(so|pyd)", name)]
    if len(modules) != 1:
        sys.exit(f"expected one compiled dloader/_loader_c module in {wheel}, found {modules}")
    binary = archive.read(modules[0])
found = sorted({match.decode() for match in re.findall(rb"_cython_([0-9][0-9a-z_]*)", binary)})
print(f"pinned Cython {pinned}; {modules[0]} was compiled by Cython {', '.join(v.replace('_', '.') for v in found)}")
sys.exit(0 if found == [pinned.replace(".", "_")] else 1)
PY
}

check_pure_wheel() {
  local listing
  listing=$("$TPY" -m zipfile -l "$PURE_WHEEL")
  case "$(basename "$PURE_WHEEL")" in
    *-py3-none-any.whl) ;;
    *) echo "the pure wheel is not tagged py3-none-any: $PURE_WHEEL"; return 1 ;;
  esac
  if grep -qE '\.(so|pyd) ' <<<"$listing"; then echo "compiled module in the pure wheel"; return 1; fi
  grep -q 'dloader/_loader_py.py ' <<<"$listing" || { echo "no dloader/_loader_py.py"; return 1; }
  grep -q 'dloader/py.typed ' <<<"$listing" || { echo "no dloader/py.typed"; return 1; }
}

# check_identifiers <platform>: cibuildwheel's selection, read from the unpacked sdist as in CI.
check_identifiers() {
  local platform=$1 expected=".ci/expected-identifiers/$1.txt" actual="$LOGS/identifiers-$1.txt"
  [ -f "$expected" ] || { echo "missing $expected"; return 1; }
  cibuildwheel --print-build-identifiers --platform "$platform" "$SDIST" >"$actual" 2>"$LOGS/identifiers-$1.err" \
    || { cat "$LOGS/identifiers-$1.err"; return 1; }
  if ! diff -u "$expected" "$actual"; then
    echo "(- expected in $expected, + printed by cibuildwheel $(cibuildwheel --version 2>/dev/null))"
    return 1
  fi
  echo "$platform: $(wc -l <"$actual") identifiers"
}

if [ -n "$SDIST" ]; then
  check "sdist ships .pyx/.pxd, tests, examples, benchmarks, LICENSE, README, the Cython pin; no generated C" \
    check_sdist_contents
  for platform in "${PLATFORMS[@]}"; do
    check "cibuildwheel identifiers ($platform, from the sdist) = .ci/expected-identifiers/$platform.txt" \
      check_identifiers "$platform"
  done

  if [ "$PREBUILT" = 1 ]; then
    BINARY_WHEEL=$(cd "$(dirname "$PREBUILT_BINARY_WHEEL")" && pwd)/$(basename "$PREBUILT_BINARY_WHEEL")
    pass "reuse the binary wheel: $(basename "$BINARY_WHEEL")"
  fi
  if [ "$PREBUILT" = 1 ] || quiet "$LOGS/wheel-binary.log" build_wheel_from_sdist binary DLOADER_REQUIRE_EXTENSIONS=1; then
    if [ "$PREBUILT" = 0 ]; then
      BINARY_WHEEL=$(ls "$WORK"/build-binary/dloader-*.whl)
      BINARY_WHEEL="$DIST/$(basename "$BINARY_WHEEL")"
      pass "binary wheel from the sdist (DLOADER_REQUIRE_EXTENSIONS=1): $(basename "$BINARY_WHEEL")"
    fi
    check "binary wheel holds dloader/_loader_c*.so, the pure twin and py.typed" check_binary_wheel
    check "binary wheel was cythonized by the pinned Cython" check_cython_used
  else
    fail "binary wheel from the sdist (DLOADER_REQUIRE_EXTENSIONS=1)"
  fi

  if [ "$PREBUILT" = 1 ]; then
    PURE_WHEEL=$(cd "$(dirname "$PREBUILT_PURE_WHEEL")" && pwd)/$(basename "$PREBUILT_PURE_WHEEL")
    pass "reuse the pure wheel: $(basename "$PURE_WHEEL")"
  fi
  if [ "$PREBUILT" = 1 ] || quiet "$LOGS/wheel-pure.log" build_wheel_from_sdist pure DLOADER_NO_EXTENSIONS=1; then
    if [ "$PREBUILT" = 0 ]; then
      PURE_WHEEL=$(ls "$WORK"/build-pure/dloader-*.whl)
      PURE_WHEEL="$DIST/$(basename "$PURE_WHEEL")"
      pass "pure wheel from the sdist (DLOADER_NO_EXTENSIONS=1): $(basename "$PURE_WHEEL")"
    fi
    check "pure wheel is py3-none-any with no compiled module" check_pure_wheel
  else
    fail "pure wheel from the sdist (DLOADER_NO_EXTENSIONS=1)"
  fi

  artifacts=("$SDIST")
  [ -n "$BINARY_WHEEL" ] && artifacts+=("$BINARY_WHEEL")
  [ -n "$PURE_WHEEL" ] && artifacts+=("$PURE_WHEEL")
  check "twine check --strict (${#artifacts[@]} artifacts)" twine check --strict "${artifacts[@]}"
else
  for platform in "${PLATFORMS[@]}"; do skip "cibuildwheel identifiers ($platform): no sdist"; done
  skip "wheels and twine check: no sdist"
fi

summary
exit "$FAILED"
