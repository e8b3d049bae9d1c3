#!/usr/bin/env bash
# Rebuild web/dist/ from source: install the locked npm packages, type-check, bundle.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-fund --no-audit --loglevel=error
npx tsc --noEmit
node build.mjs
