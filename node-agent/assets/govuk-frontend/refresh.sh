#!/usr/bin/env bash
# Rebuilds the GOV.UK Frontend stylesheet the staff console embeds, from the
# pinned npm packages, so `cargo build` never needs npm. Run it by hand after
# changing a version below, then commit what changed.
#
# The stylesheet is compiled with Arial instead of the GDS Transport font:
# that font is licensed only for services on GOV.UK domains, which a
# council's or trust's own agent is not.
set -euo pipefail
cd "$(dirname "$0")"
GOVUK_FRONTEND=6.6.0
SASS=1.108.2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(
  cd "$work"
  npm install --silent --no-audit --no-fund --no-save \
    "govuk-frontend@$GOVUK_FRONTEND" "sass@$SASS" >/dev/null
  cat > console.scss <<'SCSS'
@use "govuk-frontend/dist/govuk" as govuk with (
  $govuk-font-family: (arial, sans-serif),
  $govuk-include-default-font-face: false
);
SCSS
  npx sass --no-source-map --style=compressed --quiet --load-path=node_modules \
    console.scss govuk-frontend.min.css
)
cp "$work/govuk-frontend.min.css" .
mkdir -p images
dist="$work/node_modules/govuk-frontend/dist/govuk"
cp "$dist/assets/images/favicon.ico" "$dist/assets/images/govuk-crest.svg" images/
echo "govuk-frontend $GOVUK_FRONTEND, compiled with sass $SASS" > VERSION
