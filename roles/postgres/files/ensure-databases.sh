# shellcheck shell=sh
# Run by the postgres role inside the PostgreSQL container (docker exec, as the
# postgres user): makes sure every consumer has its login role and database.
# POSIX sh; needs only psql, which both the upstream and the self-built image have.
#
# stdin: one line per consumer, "<database> <owner> <password>" (space-separated;
#        the password is the rest of the line).
# env:   SB_SUPERUSER  the superuser (trusted over the Unix socket inside the container)
#        SB_HOST       the container's name: passwords are checked by logging in over the
#                      network, exactly as a consumer does
#        SB_CHECK      1: report what would change, change nothing
#        SB_READY_TIMEOUT  seconds to wait first for the server to accept connections
#                      (pg_isready; a server just started, or recovering): exit 3 if it does not
# stdout: one "CHANGE: ..." line per change (made, or that would be made).
# Passwords never reach argv, stdout, stderr or the server log.
set -eu

status=0
line=0

waited=0
until pg_isready --quiet --username "$SB_SUPERUSER" --dbname postgres; do
  if [ "$waited" -ge "${SB_READY_TIMEOUT:-120}" ]; then
    printf 'ERROR: the server did not accept connections within %s s (pg_isready)\n' "$waited" >&2
    exit 3
  fi
  sleep 2
  waited=$((waited + 2))
done

change() { printf 'CHANGE: %s\n' "$*"; }
fail() { printf 'ERROR: %s\n' "$*" >&2; status=1; }

# Query as the superuser over the local socket; one value per line.
query() {
  psql -X -q -t -A -v ON_ERROR_STOP=1 -U "$SB_SUPERUSER" -d postgres -c "$1" </dev/null
}

# Run SQL read from stdin as the superuser, with statement logging off for the
# session so a failing statement that carries a password is not logged either.
run_sql() {
  { printf 'SET log_statement = %s;\nSET log_min_error_statement = %s;\n' "'none'" "'panic'"; cat; } \
    | psql -X -q -v ON_ERROR_STOP=1 -U "$SB_SUPERUSER" -d postgres >/dev/null 2>&1
}

while read -r db owner password; do
  line=$((line + 1))
  [ -n "$db" ] || continue
  # The role validated these names already; they are interpolated into SQL below.
  # An invalid line is not echoed: it may hold a password.
  for name in "$db" "$owner"; do
    case "$name" in
      [a-z_]*) case "$name" in *[!a-z0-9_]*) fail "input line $line: invalid database or owner name"; continue 2 ;; esac ;;
      *) fail "input line $line: invalid database or owner name"; continue 2 ;;
    esac
  done
  [ -n "$password" ] || { fail "input line $line: no password"; continue; }
  # Single quotes doubled: a valid SQL string literal (standard_conforming_strings is on).
  password_sql="$(printf '%s' "$password" | sed "s/'/''/g")"

  created_role=0
  if [ -z "$(query "SELECT 1 FROM pg_roles WHERE rolname = '$owner'")" ]; then
    change "create role $owner"
    created_role=1
    if [ "${SB_CHECK:-0}" != 1 ]; then
      printf 'CREATE ROLE "%s" LOGIN PASSWORD '\''%s'\'';\n' "$owner" "$password_sql" | run_sql \
        || { fail "could not create role $owner"; continue; }
    fi
  fi

  current_owner="$(query "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '$db'")"
  if [ -z "$current_owner" ]; then
    change "create database $db owned by $owner (UTF8, C collation, template0)"
    if [ "${SB_CHECK:-0}" != 1 ]; then
      printf 'CREATE DATABASE "%s" OWNER "%s" ENCODING %s LC_COLLATE %s LC_CTYPE %s TEMPLATE template0;\nREVOKE ALL ON DATABASE "%s" FROM PUBLIC;\n' \
        "$db" "$owner" "'UTF8'" "'C'" "'C'" "$db" | run_sql \
        || { fail "could not create database $db"; continue; }
    fi
    continue
  fi
  if [ "$current_owner" != "$owner" ]; then
    change "change the owner of database $db from $current_owner to $owner"
    if [ "${SB_CHECK:-0}" != 1 ]; then
      printf 'ALTER DATABASE "%s" OWNER TO "%s";\n' "$db" "$owner" | run_sql \
        || { fail "could not change the owner of database $db"; continue; }
    fi
  fi
  if [ "$(query "SELECT has_database_privilege('public', '$db', 'CONNECT')")" = t ]; then
    change "revoke PUBLIC's privileges on database $db"
    if [ "${SB_CHECK:-0}" != 1 ]; then
      printf 'REVOKE ALL ON DATABASE "%s" FROM PUBLIC;\n' "$db" | run_sql \
        || { fail "could not revoke PUBLIC's privileges on database $db"; continue; }
    fi
  fi

  # The stored password still lets the owner in (a regenerated secret, a role
  # created by hand, NOLOGIN)? Log in over the network as the consumer will.
  [ "$created_role" = 0 ] || continue
  if ! PGPASSWORD="$password" PGCONNECT_TIMEOUT=5 psql -X -q -w -h "$SB_HOST" -U "$owner" -d "$db" \
      -c 'SELECT 1' </dev/null >/dev/null 2>&1; then
    change "set the password of role $owner (the stored one did not log in)"
    if [ "${SB_CHECK:-0}" != 1 ]; then
      printf 'ALTER ROLE "%s" LOGIN PASSWORD '\''%s'\'';\n' "$owner" "$password_sql" | run_sql \
        || { fail "could not set the password of role $owner"; continue; }
    fi
  fi
done

exit "$status"
