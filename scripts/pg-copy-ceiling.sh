#!/usr/bin/env bash
# The raw insert ceiling of this machine's PostgreSQL for event-shaped rows: COPY of N rows (default 500,000) into a
# table with an event row's columns and indexes, durable (a logged table, synchronous commit). It is the limit that
# `rapport bench tracking --database-url …` should be read against.
# Usage: scripts/pg-copy-ceiling.sh [ROWS] [ADMIN_URL]
set -euo pipefail
rows=${1:-500000}
admin=${2:-postgres://postgres@127.0.0.1:5432/postgres}
database="rapport_copy_ceiling_$$"
work=$(mktemp -d)
trap 'psql "$admin" -qc "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1; rm -rf "$work"' EXIT

psql "$admin" -qc "CREATE DATABASE $database"
url="${admin%/*}/$database"
psql "$url" -q <<'SQL'
CREATE TABLE events (
    contact_id bigint NOT NULL,
    type_id integer NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_delay_ms integer NOT NULL,
    source integer NOT NULL,
    context_id bigint NOT NULL,
    properties jsonb NOT NULL,
    message_hash bigint NOT NULL
);
CREATE INDEX events_by_contact ON events (contact_id, occurred_at);
CREATE UNIQUE INDEX events_by_message ON events (message_hash);
SQL
# The same mix as the benchmark: 50,000 visitors, random message hashes, small property documents.
psql "$url" -qAtc "COPY (SELECT (g * 2654435761) % 50000, g % 2, now(), 5, 1, g % 1000,
    '{\"button\":\"demo\",\"plan\":\"pro\",\"position\":' || (g % 7) || '}',
    (random() * 9.2e18)::bigint FROM generate_series(1, $rows) AS g) TO STDOUT" > "$work/rows.tsv"

started=$(date +%s.%N)
psql "$url" -qc "\\copy events FROM '$work/rows.tsv'"
ended=$(date +%s.%N)
size=$(psql "$url" -qAtc "SELECT pg_total_relation_size('events')")
awk -v rows="$rows" -v start="$started" -v end="$ended" -v size="$size" 'BEGIN {
    seconds = end - start
    printf "COPY ceiling         %10.0f rows/s   (%d rows in %.1f s; %.0f bytes/row with both indexes)\n", rows / seconds, rows, seconds, size / rows
}'
