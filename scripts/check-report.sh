#!/usr/bin/env bash
# Checks that a run's report.html is self-contained and loads without errors in headless Chromium,
# and takes a screenshot of it.
#
#   scripts/check-report.sh RUN_DIR [SCREENSHOT.png]
#
# Default screenshot: RUN_DIR/report-screenshot.png. SCREENSHOT_WIDTH/SCREENSHOT_HEIGHT set the window
# (default 1280x2000; a taller window captures more of the page). Installs Debian's `chromium` with
# apt-get when it is missing and this runs as root. Exits non-zero, saying why, when the page fetches
# anything, runs a script, logs a console message or a load error, or misses a plot.
set -euo pipefail
say() { printf 'check-report: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ $# -ge 1 ] || die "usage: scripts/check-report.sh RUN_DIR [SCREENSHOT.png]"
run_dir="$(cd "$1" && pwd)" || die "$1: no such directory"
html="$run_dir/report.html"
shot="${2:-$run_dir/report-screenshot.png}"
[ -f "$html" ] || die "$html is missing: write the report first (simulator run writes it)"

if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing chromium (Debian package) for the headless check"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    die "chromium is missing: install it (Debian/Ubuntu: sudo apt-get install chromium) and re-run"
  fi
fi

# 1. Static checks: no scripts, no external resources.
if grep -qi '<script' "$html"; then die "$html contains a <script> element"; fi
if grep -Eqi '(src|href)="(https?:)?//' "$html"; then die "$html references an external resource"; fi
if grep -Eqi 'url\((["'"'"'])?(https?:)?//' "$html"; then die "$html has a CSS url() to the network"; fi
if grep -Eqi '<(link|iframe|img|object|embed)[ >]' "$html"; then die "$html embeds an external element"; fi

# 2. Load it in headless Chromium with logging, dump the DOM, take a screenshot.
profile="$(mktemp -d)"
logs="$(mktemp -d)"
trap 'rm -rf "$profile" "$logs"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$profile"
  --enable-logging=stderr --v=0)
chromium "${flags[@]}" --dump-dom "file://$html" >"$logs/dom.html" 2>"$logs/dom.log" ||
  die "chromium failed to load the page: $(tail -n 5 "$logs/dom.log")"
width="${SCREENSHOT_WIDTH:-1280}"
height="${SCREENSHOT_HEIGHT:-2000}"
chromium "${flags[@]}" --window-size="$width,$height" --screenshot="$shot" "file://$html" \
  >/dev/null 2>"$logs/shot.log" || die "chromium failed to take the screenshot: $(tail -n 5 "$logs/shot.log")"
[ -s "$shot" ] || die "no screenshot was written to $shot"

# 3. Errors in the logs: any console message (the page has no scripts, so there should be none),
#    a resource that failed to load, or a network error.
if grep -E 'CONSOLE|Failed to load resource|net::ERR_|Uncaught|Not allowed to load' "$logs/dom.log" "$logs/shot.log" >"$logs/errors" 2>/dev/null; then
  cat "$logs/errors" >&2
  die "the page logged errors while loading (above)"
fi

# 4. The DOM: complete, and one inline <svg> per plots/*.svg.
grep -q '</html>' "$logs/dom.html" || die "the dumped DOM is incomplete"
want="$(find "$run_dir/plots" -maxdepth 1 -name '*.svg' 2>/dev/null | wc -l)"
got="$(grep -o '<svg' "$logs/dom.html" | wc -l)"
[ "$got" -eq "$want" ] || die "the page has $got inline plots, plots/ has $want"
grep -q 'id="summary"' "$logs/dom.html" || die "the page has no summary section"

say "ok: $html loads with no errors, $got inline plots; screenshot $shot"
