#!/bin/sh
# `npm test`'s vitest part: two runs, because one node runs per machine. The
# first (unit + integration) shares one sandbox whose node every pod test
# uses; the second (the node project) starts and kills nodes of its own, so
# it starts only once the first run's sandbox has gone. Both always run; each
# prints its own closing line and the second adds the total
# ("vitest: N passed, ..."; see summary-reporter.ts). Fails if either fails.
totals=$(mktemp "${TMPDIR:-/tmp}/cloudtaser-vitest-totals.XXXXXX") || exit 1
export CLOUDTASER_VITEST_TOTALS="$totals"
CLOUDTASER_VITEST_RUN=1/2 vitest run --project unit --project integration "$@"
first=$?
CLOUDTASER_VITEST_RUN=2/2 vitest run --project node "$@"
second=$?
rm -f "$totals"
[ "$first" -eq 0 ] && [ "$second" -eq 0 ]
