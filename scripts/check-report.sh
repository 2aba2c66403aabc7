#!/usr/bin/env bash
# Checks that the HTML pages of a directory are self-contained and load without errors in headless
# Chromium, and takes a screenshot of each: report.html (a run of `simulator run`), compare.html
# (`simulator compare --out DIR`) and sweep.html (`simulator sweep --out DIR`), whichever DIR has.
#
#   scripts/check-report.sh DIR [SCREENSHOT.png]
#
# Default screenshots: DIR/<page>-screenshot.png (report-screenshot.png for report.html); a
# SCREENSHOT.png argument names the file when DIR has one page. SCREENSHOT_WIDTH/SCREENSHOT_HEIGHT
# set the window (default 1280x2000; a taller window captures more of the page). Installs Debian's
# `chromium` with apt-get when it is missing and this runs as root. Exits non-zero, saying why, when
# a page fetches anything, runs a script, logs a console message or a load error, or misses a plot
# (one inline <svg> per DIR/plots/*.svg).
set -euo pipefail
say() { printf 'check-report: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ $# -ge 1 ] || die "usage: scripts/check-report.sh DIR [SCREENSHOT.png]"
dir="$(cd "$1" && pwd)" || die "$1: no such directory"
pages=()
for p in report compare sweep; do
  [ -f "$dir/$p.html" ] && pages+=("$p")
done
[ ${#pages[@]} -gt 0 ] || die "$dir has none of report.html, compare.html, sweep.html: write them first (simulator run, compare --out, sweep --out)"
[ $# -lt 2 ] || [ ${#pages[@]} -eq 1 ] || die "$dir has ${#pages[@]} pages; give no SCREENSHOT.png argument (each gets DIR/<page>-screenshot.png)"

if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing chromium (Debian package) for the headless check"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    die "chromium is missing: install it (Debian/Ubuntu: sudo apt-get install chromium) and re-run"
  fi
fi

profile="$(mktemp -d)"
logs="$(mktemp -d)"
trap 'rm -rf "$profile" "$logs"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$profile"
  --enable-logging=stderr --v=0)
width="${SCREENSHOT_WIDTH:-1280}"
height="${SCREENSHOT_HEIGHT:-2000}"
want="$(find "$dir/plots" -maxdepth 1 -name '*.svg' 2>/dev/null | wc -l)"

for page in "${pages[@]}"; do
  html="$dir/$page.html"
  shot="${2:-$dir/$page-screenshot.png}"

  # 1. Static checks: no scripts, no external resources.
  if grep -qi '<script' "$html"; then die "$html contains a <script> element"; fi
  if grep -Eqi '(src|href)="(https?:)?//' "$html"; then die "$html references an external resource"; fi
  if grep -Eqi 'url\((["'"'"'])?(https?:)?//' "$html"; then die "$html has a CSS url() to the network"; fi
  if grep -Eqi '<(link|iframe|img|object|embed)[ >]' "$html"; then die "$html embeds an external element"; fi

  # 2. Load it in headless Chromium with logging, dump the DOM, take a screenshot.
  chromium "${flags[@]}" --dump-dom "file://$html" >"$logs/dom.html" 2>"$logs/dom.log" ||
    die "chromium failed to load $html: $(tail -n 5 "$logs/dom.log")"
  chromium "${flags[@]}" --window-size="$width,$height" --screenshot="$shot" "file://$html" \
    >/dev/null 2>"$logs/shot.log" || die "chromium failed to take the screenshot of $html: $(tail -n 5 "$logs/shot.log")"
  [ -s "$shot" ] || die "no screenshot was written to $shot"

  # 3. Errors in the logs: any console message (the pages have no scripts, so there should be
  #    none), a resource that failed to load, or a network error.
  if grep -E 'CONSOLE|Failed to load resource|net::ERR_|Uncaught|Not allowed to load' "$logs/dom.log" "$logs/shot.log" >"$logs/errors" 2>/dev/null; then
    cat "$logs/errors" >&2
    die "$html logged errors while loading (above)"
  fi

  # 4. The DOM: complete, one inline <svg> per plots/*.svg, and its main section.
  grep -q '</html>' "$logs/dom.html" || die "the dumped DOM of $html is incomplete"
  got="$(grep -o '<svg' "$logs/dom.html" | wc -l)"
  [ "$got" -eq "$want" ] || die "$html has $got inline plots, plots/ has $want"
  grep -q 'id="summary"' "$logs/dom.html" || die "$html has no summary section"

  say "ok: $html loads with no errors, $got inline plots; screenshot $shot"
done
