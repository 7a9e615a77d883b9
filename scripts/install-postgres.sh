#!/usr/bin/env bash
# Installs Debian's postgresql package when its server binaries are missing,
# and starts or stops a throwaway cluster for a test run. Idempotent: a
# machine that has the binaries is left alone. The package's own service is
# never started.
#
#   scripts/install-postgres.sh                 install only
#   scripts/install-postgres.sh --start DIR     install, then initdb in DIR and start a server
#                                               on a free 127.0.0.1 port; prints
#                                               export DATABASE_URL_POSTGRES_TEST=postgres://...
#   scripts/install-postgres.sh --stop DIR      stop that server and remove DIR
#
# The store tests (internal/callrecords/dbtest) use DATABASE_URL_POSTGRES_TEST
# when it is set, and otherwise start a cluster of their own the same way.
# As root, the server runs as the user postgres (initdb refuses root).
set -euo pipefail

mode="${1:-install}"
dir="${2:-}"

bindir() {
	ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

install() {
	if [ -n "$(bindir)" ] && [ -x "$(bindir)/initdb" ]; then
		return 0
	fi
	"$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" postgresql
	"$(bindir)/postgres" --version >&2
}

# as_pg runs a command as the server's user.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
		echo $((20000 + RANDOM % 20000))
}

case "$mode" in
install)
	install
	;;
--start)
	[ -n "$dir" ] || { echo "usage: $0 --start DIR" >&2; exit 2; }
	install
	bin="$(bindir)"
	mkdir -p "$dir"
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$dir"
	fi
	if ! as_pg test -w "$dir"; then
		echo "$0: $dir is not writable by the server's user (are its parents traversable?)" >&2
		exit 1
	fi
	as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C --no-sync >/dev/null
	port="$(free_port)"
	# Durability is not under test here (the recorder's crash test kills the
	# recorder, not PostgreSQL): fsync off keeps a shared CI disk fast.
	as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 -o \
		"-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
		start >/dev/null
	echo "export DATABASE_URL_POSTGRES_TEST=postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	;;
--stop)
	[ -n "$dir" ] || { echo "usage: $0 --stop DIR" >&2; exit 2; }
	if [ -d "$dir/data" ]; then
		as_pg "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
	;;
*)
	echo "usage: $0 [--start DIR | --stop DIR]" >&2
	exit 2
	;;
esac
